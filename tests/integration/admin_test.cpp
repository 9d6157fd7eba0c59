// The admin API and meridianctl against the sandbox: status from every region, authentication,
// pause and resume, and a promotion refused while the primary is up.
#include <catch2/catch.hpp>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {
}  // namespace

TEST_CASE("meridianctl status shows the topology and every region's view", "[integration][admin]") {
  for (int r : {us, eu, 2}) {
    auto status = sandbox::script_output("ctl " + std::string(r == us ? "us-east-1" : r == eu ? "eu-west-1" : "ap-southeast-1") +
                                         " status");
    INFO(status.output);
    REQUIRE(status.exit_code == 0);
    CHECK_THAT(status.output, Catch::Contains("primary us-east-1"));
    CHECK_THAT(status.output, Catch::Contains("leader"));
  }
  // Every region's view of the primary arrives through etcd.
  std::string output;
  auto seen_from = [&] {
    output = sandbox::script_output("ctl status").output;
    std::size_t n = 0;
    for (const char* r : {"us-east-1       us-east-1", "eu-west-1       us-east-1", "ap-southeast-1  us-east-1"})
      if (output.find(r) != std::string::npos) ++n;
    return n;
  };
  CHECK(eventually([&] { return seen_from() == 3; }, 10s));
  INFO(output);
  CHECK_THAT(output, Catch::Contains("primary"));
}

TEST_CASE("the admin API wants its token; its health check does not", "[integration][admin]") {
  CHECK_THAT(http_get(sandbox::admin_port(us), "/healthz"), Catch::Contains("ok"));
  CHECK(http_get(sandbox::admin_port(us), "/v1/status").find("primary") == std::string::npos);
  auto bad = run_command(std::string("MERIDIAN_ADMIN_TOKEN=wrong-token-wrong-token ") + MERIDIAN_TEST_CTL +
                         " --url http://127.0.0.1:" + std::to_string(sandbox::admin_port(us)) + " status");
  CHECK(bad.exit_code != 0);
  CHECK_THAT(bad.output, Catch::Contains("401"));
}

TEST_CASE("pause holds new transactions in every region and resume lets them run", "[integration][admin]") {
  // Through etcd to the eu Meridian.
  check_pause_holds(eu, [] { return sandbox::script("ctl pause") == 0; }, [] { return sandbox::script("ctl resume") == 0; });
}

TEST_CASE("promote is refused while the primary is reachable", "[integration][admin]") {
  auto r = sandbox::script_output("ctl promote eu-west-1");
  INFO(r.output);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.output, Catch::Contains("reachable") && Catch::Contains("switchover"));
  auto unknown = sandbox::script_output("ctl promote mars-north-1");
  CHECK(unknown.exit_code != 0);
  CHECK_THAT(unknown.output, Catch::Contains("no node is named"));
}
