// The admin console: psql into the virtual database "meridian" of the sandbox's Meridians as
// the operator user; every command's columns, what the tables hold, who may not come in, and
// PAUSE/RESUME through it. The admin API serves the same tables as JSON.
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <map>
#include <sstream>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {

std::string console_dsn(int region, const std::string& user = "operator", const std::string& password = "operator-secret") {
  return "host=127.0.0.1 port=" + std::to_string(sandbox::meridian_port(region)) + " user=" + user +
         " password=" + password + " dbname=meridian connect_timeout=10";
}

struct result_table {
  std::string error;  // SQLSTATE and message when the command failed
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
  [[nodiscard]] std::string cell(std::size_t row, const std::string& column) const {
    for (std::size_t i = 0; i < columns.size(); ++i)
      if (columns[i] == column && row < rows.size()) return rows[row][i];
    return "?";
  }
  [[nodiscard]] std::vector<std::string> column(const std::string& name) const {
    std::vector<std::string> out;
    for (std::size_t r = 0; r < rows.size(); ++r) out.push_back(cell(r, name));
    return out;
  }
};

result_table run(pg_connection& c, const std::string& command) {
  result_table t;
  PGresult* res = PQexec(c.raw(), command.c_str());
  if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK) {
    for (int i = 0; i < PQnfields(res); ++i) t.columns.emplace_back(PQfname(res, i));
    for (int r = 0; r < PQntuples(res); ++r) {
      std::vector<std::string> row;
      for (int i = 0; i < PQnfields(res); ++i) row.emplace_back(PQgetvalue(res, r, i));
      t.rows.push_back(std::move(row));
    }
  } else {
    const char* code = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    t.error = std::string(code ? code : "?") + " " + PQresultErrorMessage(res);
  }
  PQclear(res);
  return t;
}

bool contains(const std::vector<std::string>& v, const std::string& x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

TEST_CASE("every console command returns its columns, and the tables hold what runs", "[integration][console]") {
  // Some traffic first, so pools and servers have something to show.
  pg_connection app(sandbox::dsn(eu));
  REQUIRE(app.ok());
  CHECK(app.scalar("SELECT 1") == "1");
  CHECK(app.scalar("BEGIN; SELECT txid_current()::text <> ''").value_or("") == "t");  // holds a primary connection

  pg_connection console(console_dsn(eu));
  REQUIRE(console.ok());
  const std::map<std::string, std::vector<std::string>> expected{
      {"SHOW HELP", {"command", "shows or does"}},
      {"SHOW POOLS", {"node", "database", "user", "sv_active", "sv_idle", "sv_total", "sv_max", "cl_waiting", "connects",
                      "checkouts", "wait_timeouts"}},
      {"SHOW CLIENTS", {"id", "user", "database", "address", "tls", "state", "node", "connected_s", "consistency"}},
      {"SHOW SERVERS", {"node", "database", "user", "state", "client", "backend_pid", "age_s", "idle_s"}},
      {"SHOW NODES", {"node", "region", "role", "local", "up", "readable", "lag_bytes", "lag_ms", "probe_ms", "timeline",
                      "problem"}},
      {"SHOW TOPOLOGY", {"key", "value"}},
      {"SHOW STATS", {"metric", "labels", "value"}},
      {"SHOW CONFIG", {"setting", "value"}},
  };
  std::map<std::string, result_table> got;
  for (const auto& [command, columns] : expected) {
    INFO(command);
    got[command] = run(console, command);
    CHECK(got[command].error.empty());
    CHECK(got[command].columns == columns);
  }
  // Lower case and a semicolon work as well.
  CHECK(run(console, "show pools;").columns == expected.at("SHOW POOLS"));

  const auto& nodes = got["SHOW NODES"];
  REQUIRE(nodes.rows.size() == 3);
  CHECK(nodes.cell(0, "node") == "us-east-1");
  CHECK(nodes.cell(0, "role") == "primary");
  CHECK(nodes.cell(1, "role") == "replica");
  CHECK(nodes.cell(1, "local") == "yes");
  CHECK(nodes.column("up") == std::vector<std::string>{"yes", "yes", "yes"});
  // The open transaction holds a server connection on the primary, shown as active with its client.
  const auto& servers = got["SHOW SERVERS"];
  bool active_on_primary = false;
  for (std::size_t r = 0; r < servers.rows.size(); ++r)
    active_on_primary = active_on_primary || (servers.cell(r, "node") == "us-east-1" && servers.cell(r, "state") == "active" &&
                                              servers.cell(r, "user") == "app");
  CHECK(active_on_primary);
  const auto& clients = got["SHOW CLIENTS"];
  CHECK(contains(clients.column("user"), "operator"));
  CHECK(contains(clients.column("state"), "in transaction"));
  const auto& pools = got["SHOW POOLS"];
  CHECK(contains(pools.column("node"), "eu-west-1"));
  CHECK(contains(pools.column("node"), "us-east-1"));
  const auto& config = got["SHOW CONFIG"];
  CHECK(config.cell(0, "setting") == "region");
  CHECK(config.cell(0, "value") == "eu-west-1");
  for (const auto& row : config.rows) CHECK(row[1].find("secret") == std::string::npos);  // no passwords
  CHECK(contains(got["SHOW STATS"].column("metric"), "meridian_client_connections"));
  CHECK(contains(got["SHOW TOPOLOGY"].column("key"), "topology.epoch"));
  CHECK(contains(got["SHOW TOPOLOGY"].column("value"), "us-east-1"));
  app.scalar("COMMIT");

  // psql itself, as an operator would.
  auto psql = run_command("PGPASSWORD=operator-secret psql -X -A -F'|' -h 127.0.0.1 -p " +
                          std::to_string(sandbox::meridian_port(eu)) + " -U operator -d meridian -c 'SHOW NODES' 2>&1");
  INFO(psql.output);
  CHECK(psql.exit_code == 0);
  CHECK_THAT(psql.output, Catch::Contains("node|region|role|local|up|readable") && Catch::Contains("us-east-1|us-east-1|primary"));

  // The admin API's JSON holds the same tables.
  std::ifstream token_file(sandbox::dir() + "/admin-token");
  std::string token;
  std::getline(token_file, token);
  auto json = http_get(sandbox::admin_port(eu), "/v1/show/nodes", token);
  CHECK_THAT(json, Catch::Contains("\"node\":\"us-east-1\"") && Catch::Contains("\"role\":\"primary\""));
  CHECK(http_get(sandbox::admin_port(eu), "/v1/show/nodes").find("us-east-1") == std::string::npos);  // token required
}

TEST_CASE("the console refuses other users, unknown commands and the extended protocol", "[integration][console]") {
  pg_connection app(console_dsn(us, "app", "app-secret"));
  CHECK_FALSE(app.ok());
  CHECK_THAT(app.error(), Catch::Contains("may not use the admin console"));
  pg_connection wrong(console_dsn(us, "operator", "nope"));
  CHECK_THAT(wrong.error(), Catch::Contains("password authentication failed"));

  pg_connection console(console_dsn(us));
  REQUIRE(console.ok());
  auto unknown = run(console, "SELECT * FROM pg_class");
  CHECK_THAT(unknown.error, Catch::StartsWith("42601") && Catch::Contains("SHOW POOLS"));
  PGresult* prepared = PQprepare(console.raw(), "", "SHOW POOLS", 0, nullptr);
  CHECK(PQresultStatus(prepared) == PGRES_FATAL_ERROR);
  CHECK_THAT(std::string(PQresultErrorMessage(prepared)), Catch::Contains("simple queries only"));
  PQclear(prepared);
  CHECK(run(console, "SHOW HELP").rows.size() == 11);  // still usable after both
  auto reload = run(console, "RELOAD");
  CHECK(reload.error.empty());
}

TEST_CASE("PAUSE in the console holds new transactions in every region, RESUME lets them run without error",
          "[integration][console]") {
  pg_connection console(console_dsn(us));
  REQUIRE(console.ok());
  check_pause_holds(ap, [&] { return run(console, "PAUSE").error.empty(); },
                    [&] { return run(console, "RESUME").error.empty(); });
}

TEST_CASE("SHUTDOWN in the console drains and stops that Meridian", "[integration][console]") {
  constexpr int port = 26491;
  spawned_meridian m("console-shutdown-test",
                     primary_only_config(port, "pool: { size: 2 }\nauth: { method: scram-sha-256 }\n"
                                               "admin: { users: [operator] }\n"
                                               "users:\n  - { name: app, password: app-secret }\n"
                                               "  - { name: operator, password: operator-secret }\n"));
  const std::string console_at = "host=127.0.0.1 port=" + std::to_string(port) +
                                 " user=operator password=operator-secret dbname=meridian connect_timeout=10";
  REQUIRE(eventually([&] { return pg_connection(console_at).ok(); }, 10s));
  pg_connection console(console_at);
  REQUIRE(console.ok());
  auto r = run(console, "SHUTDOWN");
  CHECK(r.error.empty());
  CHECK(m.exited_within(15s));
}

TEST_CASE("RELOAD and SIGHUP put a new pool size and password in force live; a bad file is refused, traffic goes on",
          "[integration][console][reload]") {
  constexpr int port = 26490;
  const auto config = [&](const std::string& pool_size, const std::string& app_user, const std::string& extra = "") {
    return primary_only_config(port, "pool: { size: " + pool_size + " }\nauth: { method: scram-sha-256 }\n"
                                     "admin: { users: [operator] }\n" + extra + "users:\n  - " + app_user + "\n"
                                     "  - { name: operator, password: operator-secret }\n");
  };
  const std::string name = "reload-test";
  spawned_meridian m(name, config("4", "{ name: app, password: app-secret }"));
  const auto rewrite = [&](const std::string& yaml) { std::ofstream(sandbox::dir() + "/" + name + ".yaml") << yaml; };
  const auto dsn = [&](const std::string& user, const std::string& password, const std::string& db = "app") {
    return "host=127.0.0.1 port=" + std::to_string(port) + " user=" + user + " password=" + password + " dbname=" + db +
           " connect_timeout=10";
  };
  REQUIRE(eventually([&] { return pg_connection(dsn("operator", "operator-secret", "meridian")).ok(); }, 10s));
  pg_connection console(dsn("operator", "operator-secret", "meridian"));
  pg_connection before(dsn("app", "app-secret"));
  REQUIRE(before.ok());
  CHECK(before.scalar("SELECT 1") == "1");
  CHECK(run(console, "SHOW POOLS").cell(0, "sv_max") == "4");

  // A smaller pool and a new password for app (the server keeps the old one as server_password).
  rewrite(config("2", "{ name: app, password: app-secret-2, server_password: app-secret }"));
  auto notices = std::string();
  PQsetNoticeProcessor(console.raw(), [](void* out, const char* text) { *static_cast<std::string*>(out) += text; }, &notices);
  auto reloaded = run(console, "RELOAD");
  CHECK(reloaded.error.empty());
  CHECK_THAT(notices, Catch::Contains("pool.size") && Catch::Contains("users[app].password"));
  CHECK_THAT(notices, !Catch::Contains("app-secret"));
  CHECK(run(console, "SHOW POOLS").cell(0, "sv_max") == "2");
  CHECK_FALSE(pg_connection(dsn("app", "app-secret")).ok());
  pg_connection after(dsn("app", "app-secret-2"));
  REQUIRE(after.ok());
  CHECK(after.scalar("SELECT current_user") == "app");
  CHECK(before.scalar("SELECT 'kept'") == "kept");  // nobody dropped

  // A file that does not parse, and one that moves the listener: refused, nothing changes.
  rewrite("pool: { size: [\n");
  auto broken = run(console, "RELOAD");
  CHECK_THAT(broken.error, Catch::StartsWith("55000") && Catch::Contains("refused") && Catch::Contains("invalid YAML"));
  rewrite(primary_only_config(port + 1, "admin: { users: [operator] }\nusers:\n  - { name: operator, password: operator-secret }\n"));
  auto moved = run(console, "RELOAD");
  CHECK_THAT(moved.error, Catch::Contains("listen changed, which takes a restart"));
  CHECK(run(console, "SHOW POOLS").cell(0, "sv_max") == "2");
  CHECK(pg_connection(dsn("app", "app-secret-2")).ok());
  CHECK(before.scalar("SELECT 'still'") == "still");

  // SIGHUP does the same.
  rewrite(config("3", "{ name: app, password: app-secret-2, server_password: app-secret }"));
  m.signal(SIGHUP);
  CHECK(eventually([&] { return run(console, "SHOW POOLS").cell(0, "sv_max") == "3"; }, 10s));
}

TEST_CASE("RELOAD adds, moves and removes nodes live; removing the primary is refused", "[integration][console][reload]") {
  constexpr int port = 26493;
  constexpr int metrics_port = 26593;
  // This Meridian is in eu-west-1, so a replica there takes its reads.
  const auto config = [&](const std::string& nodes) {
    return "region: eu-west-1\n"
           "listen: { host: 127.0.0.1, port: " + std::to_string(port) + " }\n"
           "nodes:\n" + nodes +
           "monitor: { user: meridian_monitor, password: monitor-secret, interval: 100ms, timeout: 1s, sslmode: disable }\n"
           "metrics: { host: 127.0.0.1, port: " + std::to_string(metrics_port) + " }\n"
           "admin: { users: [operator] }\n"
           "users:\n  - { name: app, password: app-secret }\n  - { name: operator, password: operator-secret }\n";
  };
  const auto node = [](const std::string& name, int pg_region, const std::string& role) {
    return "  - { name: " + name + ", region: " + name + ", host: 127.0.0.1, port: " + pg_port_str(pg_region) +
           ", role: " + role + " }\n";
  };
  const std::string primary = node("us-east-1", us, "primary");
  const std::string name = "node-reload-test";
  spawned_meridian m(name, config(primary));
  const auto rewrite = [&](const std::string& yaml) { std::ofstream(sandbox::dir() + "/" + name + ".yaml") << yaml; };
  const auto dsn = [&](const std::string& user, const std::string& password, const std::string& db) {
    return "host=127.0.0.1 port=" + std::to_string(port) + " user=" + user + " password=" + password + " dbname=" + db +
           " connect_timeout=10";
  };
  REQUIRE(eventually([&] { return pg_connection(dsn("operator", "operator-secret", "meridian")).ok(); }, 10s));
  pg_connection console(dsn("operator", "operator-secret", "meridian"));
  pg_connection client(dsn("app", "app-secret", "app"));
  REQUIRE(client.ok());
  const auto read_port = [&] { return client.scalar("SELECT inet_server_port()").value_or("?"); };
  const auto up = [&](const std::string& node_name) {
    return metric(http_get(metrics_port, "/metrics"), "meridian_node_up",
                  "node=\"" + node_name + "\",region=\"" + node_name + "\"");
  };
  CHECK(read_port() == pg_port_str(us));  // no replica yet: reads go to the primary
  CHECK(up("eu-west-1") == -1);

  // A replica in this region added: reads move to it once it is probed.
  rewrite(config(primary + node("eu-west-1", eu, "replica")));
  auto added = run(console, "RELOAD");
  CHECK(added.error.empty());
  CHECK(contains(run(console, "SHOW NODES").column("node"), "eu-west-1"));
  CHECK(eventually([&] { return read_port() == pg_port_str(eu); }, 10s));
  CHECK(up("eu-west-1") == 1);

  // The same node at another address (the ap-southeast-1 server stands in for a rebuilt one).
  rewrite(config(primary + node("eu-west-1", ap, "replica")));
  CHECK(run(console, "RELOAD").error.empty());
  CHECK(eventually([&] { return read_port() == pg_port_str(ap); }, 10s));
  CHECK(read_port() == pg_port_str(ap));  // and stays there: no pooled connection to the old address is reused

  // Removed: reads back on the primary, the node gone from SHOW NODES and from the gauges.
  rewrite(config(primary));
  CHECK(run(console, "RELOAD").error.empty());
  CHECK(eventually([&] { return read_port() == pg_port_str(us); }, 10s));
  CHECK_FALSE(contains(run(console, "SHOW NODES").column("node"), "eu-west-1"));
  CHECK(up("eu-west-1") == -1);
  CHECK(up("us-east-1") == 1);

  // A file without the primary: refused, everything stays, the client goes on.
  rewrite(config(node("eu-west-1", eu, "primary")));
  auto refused = run(console, "RELOAD");
  CHECK_THAT(refused.error, Catch::Contains("refused") && Catch::Contains("us-east-1 is the primary"));
  CHECK(contains(run(console, "SHOW NODES").column("node"), "us-east-1"));
  CHECK_FALSE(contains(run(console, "SHOW NODES").column("node"), "eu-west-1"));
  CHECK(read_port() == pg_port_str(us));
  CHECK(client.scalar("SELECT 'still here'") == "still here");

  // Added back under its old name, by SIGHUP this time.
  rewrite(config(primary + node("eu-west-1", eu, "replica")));
  m.signal(SIGHUP);
  CHECK(eventually([&] { return read_port() == pg_port_str(eu); }, 10s));
}
