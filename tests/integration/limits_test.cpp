// Connection limits per user and per database, on a Meridian of the test's own in front of the
// sandbox's primary.
#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <vector>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {
constexpr int port = 26495;
std::string dsn(const std::string& user, const std::string& password, const std::string& database = "app") {
  return "host=127.0.0.1 port=" + std::to_string(port) + " user=" + user + " password=" + password + " dbname=" + database +
         " connect_timeout=5";
}
}  // namespace

TEST_CASE("clients per user and per database are limited, with 53300, and slots come back", "[integration][limits]") {
  spawned_meridian m("limits-test", primary_only_config(port,
                                                      "pool: { size: 4 }\n"
                     "limits: { max_clients_per_user: 3, max_clients_per_database: 5 }\n"
                     "auth: { method: md5 }\n"
                                                      "users:\n  - { name: app, password: app-secret }\n"
                                                      "  - { name: legacy, password: legacy-secret }\n"));
  REQUIRE(eventually([] { return pg_connection(dsn("app", "app-secret")).ok(); }, 10s));
  std::vector<std::unique_ptr<pg_connection>> app;
  for (int i = 0; i < 3; ++i) {
    app.push_back(std::make_unique<pg_connection>(dsn("app", "app-secret")));
    REQUIRE(app.back()->ok());
  }
  pg_connection fourth(dsn("app", "app-secret"));
  CHECK_FALSE(fourth.ok());
  CHECK_THAT(fourth.error(), Catch::Contains("too many connections for role \"app\""));
  // Failed logins take no slot: a wrong password is refused for the password, not the limit.
  pg_connection wrong(dsn("app", "nope"));
  CHECK_THAT(wrong.error(), Catch::Contains("password authentication failed"));
  // Another user has slots of its own, until the database is full (3 app + 2 legacy).
  std::vector<std::unique_ptr<pg_connection>> legacy;
  for (int i = 0; i < 2; ++i) {
    legacy.push_back(std::make_unique<pg_connection>(dsn("legacy", "legacy-secret")));
    REQUIRE(legacy.back()->ok());
  }
  pg_connection sixth(dsn("legacy", "legacy-secret"));
  CHECK_FALSE(sixth.ok());
  CHECK_THAT(sixth.error(), Catch::Contains("too many connections for database \"app\""));
  // A client leaving frees its slot.
  app.pop_back();
  CHECK(eventually([] { return pg_connection(dsn("app", "app-secret")).ok(); }, 10s));
  CHECK(app.front()->scalar("SELECT 1") == "1");
}

TEST_CASE("a client idle inside a transaction past the limit is ended with 25P03 and its work rolled back",
          "[integration][limits]") {
  constexpr int idle_port = 26494;
  spawned_meridian m("idle-test", primary_only_config(idle_port,
                                                    "pool: { size: 4 }\n"
                                                    "limits: { idle_in_transaction_timeout: 300ms }\n"
                                                    "auth: { method: md5 }\n"
                                                    "users:\n  - { name: app, password: app-secret }\n"));
  const std::string dsn = "host=127.0.0.1 port=" + std::to_string(idle_port) + " user=app password=app-secret dbname=app";
  REQUIRE(eventually([&] { return pg_connection(dsn).ok(); }, 10s));
  pg_connection setup(dsn);
  setup.scalar("CREATE TABLE IF NOT EXISTS itest_idle (v int)");
  setup.scalar("DELETE FROM itest_idle");
  pg_connection outside(dsn);  // idle too, but not in a transaction
  REQUIRE(outside.ok());
  pg_connection inside(dsn);
  REQUIRE(inside.ok());
  // libpq hands an error that arrives while no query runs to the notice processor.
  std::string notices;
  PQsetNoticeProcessor(
      inside.raw(), [](void* out, const char* message) { *static_cast<std::string*>(out) += message; }, &notices);
  inside.scalar("BEGIN");
  inside.scalar("INSERT INTO itest_idle VALUES (1)");
  const auto began = std::chrono::steady_clock::now();
  REQUIRE(eventually([&] {
    PQconsumeInput(inside.raw());
    (void)PQisBusy(inside.raw());  // parses what arrived: the FATAL goes to the notice processor
    return PQstatus(inside.raw()) == CONNECTION_BAD;
  }, 10s));
  CHECK(std::chrono::steady_clock::now() - began >= 300ms);
  CHECK_THAT(notices, Catch::Contains("FATAL:  terminating connection due to idle-in-transaction timeout"));
  CHECK(outside.scalar("SELECT count(*) FROM itest_idle") == "0");  // rolled back; and this one lives on
}

TEST_CASE("repeated failed logins are answered slowly, then locked out with 28000, only for that user and address",
          "[integration][limits][auth]") {
  constexpr int throttle_port = 26493;
  spawned_meridian m("throttle-test",
                     primary_only_config(throttle_port,
                                         "pool: { size: 2 }\n"
                                         "limits: { max_auth_failures: 3, auth_failure_window: 3s, auth_failure_delay: 200ms }\n"
                                         "auth: { method: scram-sha-256 }\n"
                                         "users:\n  - { name: app, password: app-secret }\n"
                                         "  - { name: legacy, password: legacy-secret }\n"));
  const auto login = [&](const std::string& user, const std::string& password) {
    return std::make_unique<pg_connection>("host=127.0.0.1 port=" + std::to_string(throttle_port) + " user=" + user +
                                           " password=" + password + " dbname=app connect_timeout=10");
  };
  REQUIRE(eventually([&] { return login("app", "app-secret")->ok(); }, 10s));
  for (int i = 0; i < 3; ++i) {
    const auto began = std::chrono::steady_clock::now();
    auto wrong = login("app", "guess-" + std::to_string(i));
    CHECK_THAT(wrong->error(), Catch::Contains("password authentication failed"));
    // 200 ms, 400 ms, 800 ms: no answer comes sooner than its delay.
    CHECK(std::chrono::steady_clock::now() - began >= 200ms * (1 << i));
  }
  // Locked out now, even with the right password; told plainly, not as a wrong password.
  auto locked = login("app", "app-secret");
  CHECK_FALSE(locked->ok());
  CHECK_THAT(locked->error(), Catch::Contains("too many failed authentication attempts for user \"app\""));
  // Another user from the same address is not affected.
  CHECK(login("legacy", "legacy-secret")->ok());
  // After the window without failures the right password works again.
  CHECK(eventually([&] { return login("app", "app-secret")->ok(); }, 10s));
}

TEST_CASE("clients beyond the pool wait in line: each gets a returned connection, or 53300 past the wait timeout",
          "[integration][limits][pool]") {
  constexpr int line_port = 26487;
  constexpr int metrics_port = 26587;
  spawned_meridian m("line-test", primary_only_config(line_port,
                                                    "threads: 1\n"
                                                    "pool: { size: 2, wait_timeout: 1500ms }\n"
                                                    "metrics: { host: 127.0.0.1, port: " + std::to_string(metrics_port) + " }\n"
                                                    "auth: { method: md5 }\n"
                                                    "users:\n  - { name: app, password: app-secret }\n"));
  const std::string line_dsn = "host=127.0.0.1 port=" + std::to_string(line_port) +
                               " user=app password=app-secret dbname=app connect_timeout=5";
  REQUIRE(eventually([&] { return pg_connection(line_dsn).ok(); }, 10s));
  const auto waiting = [&] {
    return metric(http_get(metrics_port, "/metrics"), "meridian_pool_clients_waiting", "node=\"us-east-1\"");
  };

  // Two clients inside transactions hold both server connections.
  pg_connection a(line_dsn), b(line_dsn), c(line_dsn), d(line_dsn);
  REQUIRE((a.ok() && b.ok() && c.ok() && d.ok()));
  REQUIRE(a.scalar("BEGIN; SELECT 1") == "1");
  REQUIRE(b.scalar("BEGIN; SELECT 2") == "2");

  // A third waits past the deadline: 53300 with ReadyForQuery, and its connection goes on.
  const auto began = std::chrono::steady_clock::now();
  PGresult* r = PQexec(c.raw(), "SELECT 3");
  const auto waited = std::chrono::steady_clock::now() - began;
  CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  CHECK(std::string(code ? code : "") == "53300");
  CHECK_THAT(PQresultErrorMessage(r), Catch::Contains("pool wait timeout"));
  PQclear(r);
  CHECK(waited >= 1400ms);
  CHECK(PQtransactionStatus(c.raw()) == PQTRANS_IDLE);

  // Two more wait in line. One transaction ending frees one connection: the first in line
  // gets it, and the second gets it from the first.
  REQUIRE(PQsendQuery(c.raw(), "SELECT 'c'") == 1);
  REQUIRE(eventually([&] { return waiting() == 1; }, 5s));
  REQUIRE(PQsendQuery(d.raw(), "SELECT 'd'") == 1);
  REQUIRE(eventually([&] { return waiting() == 2; }, 5s));
  const auto result_of = [](pg_connection& conn) {
    std::string value = "?";
    while (PGresult* res = PQgetResult(conn.raw())) {
      if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) value = PQgetvalue(res, 0, 0);
      PQclear(res);
    }
    return value;
  };
  CHECK(a.scalar("COMMIT; SELECT 'a done'") == "a done");
  CHECK(result_of(c) == "c");
  CHECK(result_of(d) == "d");
  CHECK(eventually([&] { return waiting() == 0; }, 5s));
  CHECK(b.scalar("COMMIT; SELECT 'b done'") == "b done");
  CHECK(c.scalar("SELECT 'still here'") == "still here");
}
