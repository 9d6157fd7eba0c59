#include "infra/local/relay/network_rules.hpp"

#include <catch2/catch.hpp>

using meridian::relay::network_rules;
using meridian::relay::service_ref;
using namespace std::chrono_literals;

namespace {

network_rules make_rules() {
  network_rules r({"us-east-1", "eu-west-1", "ap-southeast-1"});
  r.set_delay("us-east-1", "eu-west-1", 40ms);
  r.set_delay("ap-southeast-1", "us-east-1", 110ms);
  return r;
}
bool known(const std::string& s) { return s == "us-east-1/postgres" || s == "us-east-1/etcd" || s == "eu-west-1/postgres"; }
const service_ref us_pg{"us-east-1/postgres", "us-east-1"};
const service_ref us_etcd{"us-east-1/etcd", "us-east-1"};
const service_ref eu_pg{"eu-west-1/postgres", "eu-west-1"};

}  // namespace

TEST_CASE("delays are symmetric and zero inside a region") {
  auto r = make_rules();
  CHECK(r.delay("eu-west-1", "us-east-1") == 40ms);
  CHECK(r.delay("us-east-1", "ap-southeast-1") == 110ms);
  CHECK(r.delay("eu-west-1", "ap-southeast-1") == 0ms);
  CHECK(r.delay("us-east-1", "us-east-1") == 0ms);
  CHECK(r.apply("delay eu-west-1 ap-southeast-1 80", known) == "ok");
  CHECK(r.delay("ap-southeast-1", "eu-west-1") == 80ms);
}

TEST_CASE("cuts hold exactly the traffic they name") {
  struct row {
    const char* command;
    std::string from;
    service_ref to;
    bool held;
  };
  const row rows[] = {
      {"cut eu-west-1 us-east-1", "eu-west-1", us_pg, true},
      {"cut eu-west-1 us-east-1", "us-east-1", eu_pg, true},
      {"cut eu-west-1 us-east-1", "ap-southeast-1", us_pg, false},
      {"cut eu-west-1 us-east-1", "us-east-1", us_pg, false},
      {"cut eu-west-1 us-east-1/postgres", "eu-west-1", us_pg, true},
      {"cut eu-west-1 us-east-1/postgres", "eu-west-1", us_etcd, false},
      {"cut eu-west-1 us-east-1/postgres", "ap-southeast-1", us_pg, false},
      {"isolate us-east-1/postgres", "eu-west-1", us_pg, true},
      {"isolate us-east-1/postgres", "ap-southeast-1", us_pg, true},
      {"isolate us-east-1/postgres", "us-east-1", us_pg, false},
      {"isolate us-east-1/postgres", "eu-west-1", us_etcd, false},
      {"isolate us-east-1", "eu-west-1", us_etcd, true},
      {"isolate us-east-1", "us-east-1", eu_pg, true},
      {"isolate us-east-1", "ap-southeast-1", eu_pg, false},
  };
  for (const auto& row : rows) {
    auto r = make_rules();
    INFO(row.command << ": " << row.from << " -> " << row.to.name);
    REQUIRE(r.apply(row.command, known) == "ok");
    CHECK(r.blocked(row.from, row.to) == row.held);
    REQUIRE(r.apply("heal", known) == "ok");
    CHECK_FALSE(r.blocked(row.from, row.to));
  }
}

TEST_CASE("heal undoes one cut at a time") {
  auto r = make_rules();
  REQUIRE(r.apply("cut eu-west-1 us-east-1", known) == "ok");
  REQUIRE(r.apply("isolate us-east-1/postgres", known) == "ok");
  CHECK(r.apply("heal eu-west-1 us-east-1", known) == "ok");
  CHECK(r.blocked("eu-west-1", us_pg));  // still isolated
  CHECK_FALSE(r.blocked("eu-west-1", us_etcd));
  CHECK(r.apply("heal us-east-1/postgres", known) == "ok");
  CHECK_FALSE(r.blocked("eu-west-1", us_pg));
  CHECK(r.apply("heal us-east-1/postgres", known).rfind("error", 0) == 0);
}

TEST_CASE("bad commands are refused with a reason and change nothing") {
  auto r = make_rules();
  for (const char* bad : {"", "cut", "cut mars-1 us-east-1", "cut us-east-1 us-east-1", "cut us-east-1 us-east-1/postgres",
                          "cut eu-west-1 us-east-1/nothing", "isolate pluto", "delay us-east-1 eu-west-1 -5",
                          "delay us-east-1 eu-west-1 4x", "delay us-east-1 us-east-1 5", "fly away"}) {
    INFO(bad);
    CHECK(r.apply(bad, known).rfind("error: ", 0) == 0);
  }
  CHECK(r.status() == "link us-east-1 eu-west-1 40ms\nlink us-east-1 ap-southeast-1 110ms\nlink eu-west-1 ap-southeast-1 0ms");
}
