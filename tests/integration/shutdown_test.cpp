// SIGTERM drains: a Meridian of the test's own, in front of the sandbox's primary, stops
// accepting, lets an open transaction commit, tells idle clients 57P01 and exits 0.
#include <catch2/catch.hpp>

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <fstream>

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

  REQUIRE(kill(pid, SIGTERM) == 0);

  // The idle client is told and disconnected; new clients are no longer accepted.
  REQUIRE(eventually([&] { return idle.sqlstate_of("SELECT 1") != ""; }, 10s));
  CHECK_THAT(idle_notices + idle.error(), Catch::Contains("terminating connection due to administrator command"));
  CHECK(eventually([] { return !pg_connection(drain_dsn()).ok(); }, 10s));

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
