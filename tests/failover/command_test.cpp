// Hook commands: run with /bin/sh, output captured, failures and timeouts reported, and the
// awaiting thread never blocked.
#include <catch2/catch.hpp>

#include "await.hpp"
#include "failover/command.hpp"

using namespace meridian::failover;
using namespace meridian::testing;

TEST_CASE("commands run with placeholders filled, their failures and timeouts reported", "[failover][command]") {
  asio::io_context io;
  auto ok = await(io, run_command(io.get_executor(), fill_placeholders("echo promote {node} in {region}; echo done >&2",
                                                                       {{"node", "eu"}, {"region", "eu-west-1"}}),
                                  5s));
  REQUIRE(ok);
  CHECK(ok->exit_code == 0);
  CHECK(ok->output == "promote eu in eu-west-1\ndone");

  auto failed = await(io, run_command(io.get_executor(), "echo no such replica; exit 3", 5s));
  REQUIRE_FALSE(failed);
  CHECK_THAT(failed.error(), Catch::Contains("exited with 3") && Catch::Contains("no such replica"));

  // A command that hangs is killed with everything it started, at its timeout.
  const auto t0 = std::chrono::steady_clock::now();
  auto hung = await(io, run_command(io.get_executor(), "sleep 30 & sleep 30", 300ms));
  const auto took = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(hung);
  CHECK_THAT(hung.error(), Catch::Contains("timed out"));
  CHECK(took < 5s);

  // Other work on the same thread goes on while a command runs.
  int ticks = 0;
  asio::steady_timer tick(io);
  std::function<void(meridian::proxy::error_code)> again = [&](meridian::proxy::error_code ec) {
    if (ec) return;
    ++ticks;
    tick.expires_after(10ms);
    tick.async_wait(again);
  };
  tick.expires_after(10ms);
  tick.async_wait(again);
  auto slow = await(io, run_command(io.get_executor(), "sleep 0.3", 5s));
  tick.cancel();
  CHECK(slow);
  CHECK(ticks >= 5);
}

TEST_CASE("a command inherits none of Meridian's descriptors", "[failover][command]") {
  asio::io_context io;
  // A listening socket as Meridian has them (Asio does not mark them close-on-exec).
  meridian::proxy::tcp::acceptor listener(io, meridian::proxy::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const int fd = listener.native_handle();
  const auto check = "if [ -e /proc/$$/fd/" + std::to_string(fd) + " ]; then echo inherited; else echo closed; fi";
  auto r = await(io, run_command(io.get_executor(), check, 5s));
  REQUIRE(r);
  CHECK(r->output == "closed");
}
