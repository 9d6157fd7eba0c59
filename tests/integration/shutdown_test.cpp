// SIGTERM drains: a Meridian of the test's own, in front of the sandbox's primary, stops
// accepting, lets an open transaction commit, tells idle clients 57P01 and exits 0.
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>
#include <future>
#include <memory>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

extern char** environ;

namespace {
constexpr int drain_port = 26499;

std::string write_config() {
  const std::string path = sandbox::dir() + "/drain-test.yaml";
  std::ofstream out(path);
  out << primary_only_config(drain_port, "threads: 2\n") << "pool: { size: 4 }\n"
      << "limits: { shutdown_timeout: 20s }\n"
      // Warnings only: a failure's report comes right after this Meridian's log lines, and
      // CI shows the head of a failing test's output.
      << "log: { level: warn }\n"
      << "auth: { method: md5 }\n"
      << "users:\n  - { name: app, password: app-secret }\n";
  return path;
}

std::string drain_dsn() {
  return "host=127.0.0.1 port=" + std::to_string(drain_port) + " user=app password=app-secret dbname=app connect_timeout=5";
}
}  // namespace

TEST_CASE("SIGTERM lets open transactions finish, then exits", "[integration][shutdown]") {
  auto config = write_config();
  std::string binary = MERIDIAN_TEST_BINARY;
  std::vector<char*> argv{binary.data(), const_cast<char*>("--config"), config.data(), nullptr};
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, binary.c_str(), nullptr, nullptr, argv.data(), environ) == 0);
  struct reap {
    pid_t pid;
    bool done = false;
    ~reap() {
      if (!done) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
      }
    }
  } guard{pid};

  REQUIRE(eventually([] { return pg_connection(drain_dsn()).ok(); }, 10s));
  pg_connection in_tx(drain_dsn());
  pg_connection idle(drain_dsn());
  REQUIRE(in_tx.ok());
  REQUIRE(idle.ok());
  // libpq hands a FATAL that arrives while idle to the notice processor.
  std::string idle_notices;
  PQsetNoticeProcessor(
      idle.raw(), [](void* arg, const char* message) { *static_cast<std::string*>(arg) += message; }, &idle_notices);
  in_tx.scalar("CREATE TABLE IF NOT EXISTS itest_drain (id int)");
  in_tx.scalar("TRUNCATE itest_drain");
  in_tx.scalar("BEGIN");
  in_tx.scalar("INSERT INTO itest_drain VALUES (1)");

  pg_connection fresh(drain_dsn());
  REQUIRE(fresh.ok());
  REQUIRE(kill(pid, SIGTERM) == 0);

  // New clients are no longer accepted.
  REQUIRE(eventually([] { return !pg_connection(drain_dsn()).ok(); }, 10s));
  // One that connected a moment before the drain began is about to use its connection: its
  // statements are still answered (session::shutdown_grace, 1 s after it connected).
  CHECK(fresh.sqlstate_of("SELECT 1") == "");
  // An idle client is told and disconnected (these connected just before: once their grace is over).
  REQUIRE(eventually([&] { return idle.sqlstate_of("SELECT 1") != ""; }, 10s));
  CHECK_THAT(idle_notices + idle.error(), Catch::Contains("terminating connection due to administrator command"));

  // The open transaction still commits.
  CHECK(in_tx.scalar("INSERT INTO itest_drain VALUES (2)") == std::nullopt);
  CHECK(in_tx.sqlstate_of("COMMIT") == "");
  pg_connection direct(sandbox::admin_dsn(0));
  CHECK(direct.scalar("SELECT count(*) FROM itest_drain") == "2");

  int status = 0;
  REQUIRE(eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 15s));
  guard.done = true;
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a rolling restart: two Meridians on one port, the old one drained under pgbench -C, no connection lost",
          "[integration][shutdown][reuseport]") {
  // Inside the sandbox's us-east-1 namespace, where Linux moves connections queued on a closing
  // listener to another of its SO_REUSEPORT group (net.ipv4.tcp_migrate_req, per namespace).
  const std::string ns = "mrd" + std::to_string(sandbox::pg_port(us)) + "-us";
  REQUIRE(run_command("ip netns exec " + ns + " sysctl -qw net.ipv4.tcp_migrate_req=1").exit_code == 0);
  // The primary as the sandbox's own us-east-1 Meridian reaches it from there.
  std::ifstream sandbox_config(sandbox::dir() + "/meridian-us-east-1.yaml");
  std::string line, primary_host;
  while (std::getline(sandbox_config, line) && primary_host.empty()) {
    const auto at = line.find("name: us-east-1, region: us-east-1, host: ");
    if (at != std::string::npos) primary_host = line.substr(at + 42, line.find(',', at + 42) - at - 42);
  }
  REQUIRE_FALSE(primary_host.empty());
  constexpr int port = 26489;
  const std::string config = "region: us-east-1\nlisten: { host: 127.0.0.1, port: " + std::to_string(port) +
                             " }\nthreads: 2\nnodes:\n  - { name: us-east-1, host: " + primary_host +
                             ", port: " + std::to_string(sandbox::pg_port(us)) +
                             ", role: primary }\npool: { size: 8 }\nlimits: { shutdown_timeout: 20s }\n"
                             "auth: { method: md5 }\nusers:\n  - { name: app, password: app-secret }\n";
  const std::vector<std::string> in_ns{"ip", "netns", "exec", ns};
  auto old_one = std::make_unique<spawned_meridian>("rolling-old", config, in_ns);
  spawned_meridian new_one("rolling-new", config, in_ns);
  const std::string pgbench = "ip netns exec " + ns + " env PGPASSWORD=app-secret /usr/lib/postgresql/15/bin/pgbench -n -S ";
  REQUIRE(eventually([&] {
    return run_command(pgbench + "-c 2 -t 5 -C -h 127.0.0.1 -p " + std::to_string(port) + " -U app app").exit_code == 0;
  }, 10s));
  // A new connection for every transaction, while the old Meridian drains and exits.
  auto load = std::async(std::launch::async, [&] {
    return run_command(pgbench + "-c 8 -j 4 -T 6 -C -h 127.0.0.1 -p " + std::to_string(port) + " -U app app 2>&1");
  });
  const std::string old_log = sandbox::dir() + "/rolling-old.log", new_log = sandbox::dir() + "/rolling-new.log";
  REQUIRE(eventually([&] { return file_contains(old_log, "login user=app") && file_contains(new_log, "login user=app"); }, 10s));
  old_one->signal(SIGTERM);
  CHECK(old_one->exited_within(25s));
  old_one.reset();
  auto result = load.get();
  INFO(result.output);
  CHECK(result.exit_code == 0);
  CHECK_THAT(result.output, Catch::Contains("number of failed transactions: 0"));
}
