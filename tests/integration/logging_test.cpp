// Logs: JSON lines, the slow-statement log with its threshold and truncated text, no secrets.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <fstream>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

TEST_CASE("JSON log lines, slow statements with truncated text, and no secrets", "[integration][logging]") {
  constexpr int port = 26488;
  spawned_meridian m("logging-test",
                     primary_only_config(port, "pool: { size: 2 }\nauth: { method: scram-sha-256 }\n"
                                               "log: { format: json, slow_statement: 200ms, statement_text: true, statement_max: 24 }\n"
                                               "users:\n  - { name: app, password: app-secret }\n"));
  const std::string dsn = "host=127.0.0.1 port=" + std::to_string(port) + " user=app password=app-secret dbname=app";
  REQUIRE(eventually([&] { return pg_connection(dsn).ok(); }, 10s));
  pg_connection c(dsn);
  REQUIRE(c.ok());
  CHECK(c.scalar("SELECT 'quick one'") == "quick one");
  CHECK(c.scalar("SELECT pg_sleep(0.3)::text || 'slow and with a long tail of text'") == "slow and with a long tail of text");
  const std::string log = sandbox::dir() + "/logging-test.log";
  REQUIRE(eventually([&] { return file_contains(log, "slow statement"); }, 10s));
  pg_connection wrong("host=127.0.0.1 port=" + std::to_string(port) + " user=app password=not-the-secret dbname=app");
  CHECK_FALSE(wrong.ok());
  REQUIRE(eventually([&] { return file_contains(log, "authentication failed"); }, 10s));

  std::ifstream in(log);
  std::string line;
  int lines = 0, slow = 0;
  while (std::getline(in, line)) {
    INFO(line);
    auto j = nlohmann::json::parse(line, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    CHECK(j.contains("time"));
    CHECK(j.contains("level"));
    CHECK(j.value("region", "") == "us-east-1");
    const auto message = j.value("message", "");
    if (message.find("slow statement") != std::string::npos) {
      ++slow;
      CHECK_THAT(message, Catch::Contains("on us-east-1") && Catch::Contains("user app"));
      // 24 characters of the statement, no more.
      CHECK_THAT(message, Catch::EndsWith(": SELECT pg_sleep(0.3)::te"));
    }
    CHECK(line.find("app-secret") == std::string::npos);
    CHECK(line.find("not-the-secret") == std::string::npos);
    ++lines;
  }
  CHECK(lines > 3);
  CHECK(slow == 1);  // the quick one is not there
}
