#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "proxy/config.hpp"

using namespace meridian::proxy;

namespace {
const std::string minimal = R"(
region: eu-west-1
nodes:
  - { name: us-east-1, host: 127.0.0.1, port: 5432, role: primary }
  - { name: eu-west-1, host: 127.0.0.1, port: 5433, role: replica }
users:
  - { name: app, password: secret }
)";

std::string error_of(const std::string& yaml) {
  try {
    (void)load_config_string(yaml);
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("a minimal config loads with defaults", "[proxy][config]") {
  auto c = load_config_string(minimal);
  CHECK(c.region == "eu-west-1");
  CHECK(c.listen_port == 6432);
  CHECK(c.nodes.size() == 2);
  CHECK(c.nodes[0].region == "us-east-1");  // defaults to the name
  CHECK(c.nodes[1].configured_role == meridian::routing::node_role::replica);
  CHECK(c.mode == pool_mode::transaction);
  CHECK(c.auth == auth_method::scram_sha_256);
  REQUIRE(c.find_user("app"));
  CHECK(c.find_user("app")->secret == "secret");
  CHECK_FALSE(c.find_user("nobody"));
}

TEST_CASE("every setting is read", "[proxy][config]") {
  auto c = load_config_string(R"(
region: us-east-1
listen: { host: 0.0.0.0, port: 7000 }
threads: 4
nodes:
  - { name: p, region: us-east-1, host: db, port: 5000, role: primary }
pool:
  mode: session
  size: 50
  connect_timeout: 250ms
  idle_timeout: 2m
  wait_timeout: 3s
  server_lifetime: 1h
  max_prepared_statements: 100
  reset_query: "DISCARD ALL"
  reset_after_functions: false
limits: { max_clients: 99, max_message_size: 2MiB, startup_timeout: 4s, shutdown_timeout: 5s }
auth: { method: md5 }
users:
  - { name: a, password: x, server_password: y, pool_mode: transaction }
log: { level: debug }
)");
  CHECK(c.listen_host == "0.0.0.0");
  CHECK(c.listen_port == 7000);
  CHECK(c.threads == 4);
  CHECK(c.mode == pool_mode::session);
  CHECK(c.pool_size == 50);
  CHECK(c.connect_timeout == std::chrono::milliseconds(250));
  CHECK(c.idle_timeout == std::chrono::minutes(2));
  CHECK(c.wait_timeout == std::chrono::seconds(3));
  CHECK(c.server_lifetime == std::chrono::hours(1));
  CHECK(c.max_prepared_per_server == 100);
  CHECK_FALSE(c.reset_after_functions);
  CHECK(c.max_clients == 99);
  CHECK(c.max_message_bytes == 2u << 20);
  CHECK(c.startup_timeout == std::chrono::seconds(4));
  // Not set, the 5 s default would outlast the 4 s deadline: half of it instead.
  CHECK(c.auth_failure_max_delay == std::chrono::seconds(2));
  CHECK(c.shutdown_timeout == std::chrono::seconds(5));
  CHECK(c.auth == auth_method::md5);
  CHECK(c.users[0].server_password == "y");
  CHECK(c.users[0].mode == pool_mode::transaction);
  CHECK(c.log_level == "debug");
}

TEST_CASE("invalid configs name the offending key", "[proxy][config]") {
  struct row {
    std::string yaml;
    std::string expected;
  };
  const std::string nodes = "nodes: [{ name: p, host: h, role: primary }]\n";
  const std::vector<row> rows{
      {"nodes: [{ name: p, host: h, role: primary }]\n", "region: is required"},
      {"region: r\n", "nodes: must list at least one node"},
      {"region: r\nnodes: [{ name: p, host: h, role: leader }]\n", "nodes[0].role: must be"},
      {"region: r\nnodes: [{ name: p, host: h }]\n", "nodes[0].role: is required"},
      {"region: r\nnodes: [{ name: p, role: primary }]\n", "nodes[0].host: is required"},
      {"region: r\nnodes: [{ name: p, host: h, role: replica }]\n", "nodes: exactly one node must have role: primary"},
      {"region: r\nnodes: [{ name: p, host: h, role: primary }, { name: p, host: h, role: replica }]\n",
       "nodes[1].name: duplicate"},
      {"region: r\nnodes: [{ name: p, host: h, role: primary, port: 70000 }]\n", "nodes[0].port: must be between"},
      {"region: r\n" + nodes + "pool: { size: lots }\n", "pool.size: must be an integer"},
      {"region: r\n" + nodes + "pool: { mode: statement }\n", "pool.mode: must be"},
      {"region: r\n" + nodes + "pool: { wait_timeout: soon }\n", "pool.wait_timeout: must be a duration"},
      {"region: r\n" + nodes + "pool: { sise: 3 }\n", "pool.sise: unknown key"},
      {"region: r\n" + nodes + "pool: { reset_after_functions: maybe }\n", "pool.reset_after_functions: must be true or false"},
      {"region: r\n" + nodes + "limits: { max_message_size: 10 }\n", "limits.max_message_size: must be between"},
      {"region: r\n" + nodes + "limits: { startup_timeout: 0s }\n", "limits.startup_timeout: must be longer than 0"},
      {"region: r\n" + nodes + "limits: { startup_timeout: 3s, auth_failure_max_delay: 4s }\n",
       "limits.auth_failure_max_delay: must be shorter than limits.startup_timeout"},
      {"region: r\n" + nodes + "auth: { method: ldap }\n", "auth.method: must be"},
      {"region: r\n" + nodes + "users: [{ name: a }]\n", "password: is required"},
      {"region: r\n" + nodes + "log: { level: loud }\n", "log.level: must be one of"},
      {"region: r\n" + nodes + "tls: { client: sometimes, cert: c, key: k }\n", "tls.client: must be"},
      {"region: r\n" + nodes + "limits: { idle_in_transaction_timeout: forever }\n",
       "limits.idle_in_transaction_timeout: must be a duration"},
      {"region: r\n" + nodes + "limits: { max_clients_per_user: -1 }\n", "limits.max_clients_per_user: must be"},
      {"region: r\n" + nodes + "tls: { client: required }\n", "tls: cert and key are required"},
      {"region: r\n" + nodes + "tls: { cert: c, key: k, min_version: '1.1' }\n", "tls.min_version: must be 1.2 or 1.3"},
      {"region: r\n" + nodes + "tls: { cert: c, key: k, ciphers: all }\n", "tls.ciphers: unknown key"},
      {"region: r\n" + nodes + "bogus: 1\n", "bogus: unknown key"},
      {"region: [unclosed\n", "invalid YAML"},
  };
  for (const auto& r : rows) {
    INFO(r.yaml);
    CHECK_THAT(error_of(r.yaml), Catch::Contains(r.expected));
  }
}

TEST_CASE("consistency: user, then database, then default", "[proxy][config]") {
  using meridian::routing::consistency;
  auto c = load_config_string(minimal + R"(
routing: { default: split, read_only_functions: [f1, app.f2], replica_retry: 250ms }
databases:
  - { name: reporting, routing: split }
  - { name: ledger, routing: primary }
  - { name: shop, consistency: read-your-writes }
)");
  CHECK(c.read_only_functions == std::vector<std::string>{"f1", "app.f2"});
  CHECK(c.replica_retry == std::chrono::milliseconds(250));
  CHECK(c.consistency_for(nullptr, "other") == consistency::eventual);
  CHECK(c.consistency_for(nullptr, "ledger") == consistency::primary);
  CHECK(c.consistency_for(nullptr, "shop") == consistency::read_your_writes);
  user_config pinned_user{"u", "x", std::nullopt, std::nullopt, consistency::eventual, std::nullopt, false};
  CHECK(c.consistency_for(&pinned_user, "ledger") == consistency::eventual);
  CHECK(load_config_string(minimal + "routing: { consistency: read-your-writes }\n").consistency ==
        consistency::read_your_writes);
  CHECK_THAT(error_of(minimal + "databases: [{ name: d, routing: maybe }]\n"), Catch::Contains("databases[0].routing"));
  CHECK_THAT(error_of(minimal + "databases: [{ name: d, routing: split, consistency: primary }]\n"),
             Catch::Contains("not both"));
  CHECK_THAT(error_of(minimal + "routing: { default: replicas }\n"), Catch::Contains("routing.default"));
  auto no_users = minimal.substr(0, minimal.find("users:"));
  CHECK_THAT(error_of(no_users + "users: [{ name: u, password: x, consistency: strong }]\n"),
             Catch::Contains("users[0].consistency"));
}

TEST_CASE("lag limits per node, with defaults from the routing section", "[proxy][config]") {
  auto c = load_config_string(R"(
region: eu-west-1
routing: { max_lag: 150ms, max_lag_bytes: 16MiB, lag_readmit: 40%, replica_order: [ap, eu], read_your_writes_wait: 20ms }
nodes:
  - { name: us, host: 127.0.0.1, role: primary }
  - { name: eu, host: 127.0.0.2, role: replica, max_lag: 100ms }
  - { name: ap, host: 127.0.0.3, role: replica, max_lag_bytes: 1MiB }
)");
  CHECK(c.nodes[1].max_lag == std::chrono::milliseconds(100));
  CHECK(c.nodes[1].max_lag_bytes == 16u << 20);
  CHECK(c.nodes[2].max_lag == std::chrono::milliseconds(150));
  CHECK(c.nodes[2].max_lag_bytes == 1u << 20);
  CHECK(c.lag_readmit_ratio == Approx(0.4));
  CHECK(c.replica_order == std::vector<std::string>{"ap", "eu"});
  CHECK(c.read_your_writes_wait == std::chrono::milliseconds(20));
  CHECK_THAT(error_of(minimal + "routing: { replica_order: [nowhere] }\n"), Catch::Contains("routing.replica_order[0]"));
  CHECK_THAT(error_of(minimal + "routing: { lag_readmit: 0.5 }\n"), Catch::Contains("routing.lag_readmit"));
  CHECK_THAT(error_of(minimal + "routing: { lag_readmit: 120% }\n"), Catch::Contains("routing.lag_readmit"));
}

TEST_CASE("the node monitor is configured by its own section", "[proxy][config]") {
  CHECK_FALSE(load_config_string(minimal).monitor.enabled());
  auto c = load_config_string(minimal + "monitor: { user: mon, password: pw, interval: 100ms, timeout: 2s, sslmode: disable }\n");
  CHECK(c.monitor.enabled());
  CHECK(c.monitor.user == "mon");
  CHECK(c.monitor.password == "pw");
  CHECK(c.monitor.database == "postgres");
  CHECK(c.monitor.interval == std::chrono::milliseconds(100));
  CHECK(c.monitor.timeout == std::chrono::seconds(2));
  CHECK(c.monitor.sslmode == "disable");
  CHECK_THAT(error_of(minimal + "monitor: { password: pw }\n"), Catch::Contains("monitor.user"));
  CHECK_THAT(error_of(minimal + "monitor: { user: m, interval: 1ms }\n"), Catch::Contains("monitor.interval"));
  CHECK_THAT(error_of(minimal + "monitor: { user: m, sslmode: maybe }\n"), Catch::Contains("monitor.sslmode"));
  CHECK_THAT(error_of(minimal + "monitor: { user: m, password: a, password_file: b }\n"), Catch::Contains("set one of password, password_file or password_env"));
}

TEST_CASE("durations and sizes", "[proxy][config]") {
  CHECK(parse_duration("500ms") == std::chrono::milliseconds(500));
  CHECK(parse_duration("5") == std::chrono::seconds(5));
  CHECK(parse_duration("1h") == std::chrono::hours(1));
  CHECK_FALSE(parse_duration("5 s"));
  CHECK_FALSE(parse_duration("-1s"));
  CHECK_FALSE(parse_duration(""));
  // More milliseconds than fit (found by the config fuzzer), or more than ten years: refused.
  CHECK_FALSE(parse_duration("4099276460824344802"));
  CHECK_FALSE(parse_duration("9223372036854776h"));
  CHECK_FALSE(parse_duration("87601h"));
  CHECK(parse_duration("87600h") == std::chrono::hours(87600));
  CHECK(parse_size("64MiB") == 64u << 20);
  CHECK(parse_size("1024") == 1024u);
  CHECK_FALSE(parse_size("lots"));
  CHECK_FALSE(parse_size("5TB"));
  CHECK_FALSE(parse_size("18446744073709551615GiB"));
}

TEST_CASE("userlist files in PgBouncer's format", "[proxy][config]") {
  auto users = parse_userlist("; comment\n\"app\" \"SCRAM-SHA-256$4096:abc$d:e\"\n  \"o\"\"brien\" \"pw\"\n\n", "list");
  REQUIRE(users.size() == 2);
  CHECK(users[0].name == "app");
  CHECK(users[1].name == "o\"brien");
  CHECK(users[1].secret == "pw");
  CHECK_THROWS_AS(parse_userlist("app secret\n", "list"), config_error);
  CHECK_THROWS_WITH(parse_userlist("\"a\" \"b\"\n\"unterminated\n", "list"), Catch::Contains("list:2"));
}

TEST_CASE("secrets from files lose their trailing line break, paths are relative to the config", "[proxy][config]") {
  auto dir = std::filesystem::temp_directory_path() / ("meridian-config-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "client") << "s3cret\r\n";
  std::ofstream(dir / "server") << "other\n";
  auto c = load_config_string(R"(
region: r
nodes: [{ name: p, host: h, role: primary }]
users:
  - { name: app, password_file: client, server_password_file: server }
)",
                              dir.string());
  std::filesystem::remove_all(dir);
  REQUIRE(c.find_user("app"));
  CHECK(c.find_user("app")->secret == "s3cret");
  CHECK(c.find_user("app")->server_password == "other");
  CHECK_THAT(error_of("region: r\nnodes: [{ name: p, host: h, role: primary }]\nusers: [{ name: a, password_file: /nonexistent/x }]\n"),
             Catch::Contains("users[0].password_file: cannot read file"));
}

TEST_CASE("secrets from environment variables, named by the config, never shown in errors", "[proxy][config]") {
  ::setenv("MERIDIAN_TEST_APP_SECRET", "env-s3cret", 1);
  ::setenv("MERIDIAN_TEST_ADMIN_TOKEN", "a-token-of-twenty-chars", 1);
  auto c = load_config_string(R"(
region: r
nodes: [{ name: p, host: h, role: primary }]
admin: { port: 6480, token_env: MERIDIAN_TEST_ADMIN_TOKEN }
users:
  - { name: app, password_env: MERIDIAN_TEST_APP_SECRET, server_password_env: MERIDIAN_TEST_APP_SECRET }
)",
                              "/");
  REQUIRE(c.find_user("app"));
  CHECK(c.find_user("app")->secret == "env-s3cret");
  CHECK(c.find_user("app")->server_password == "env-s3cret");
  CHECK(c.admin_token == "a-token-of-twenty-chars");
  const std::string nodes = "region: r\nnodes: [{ name: p, host: h, role: primary }]\n";
  CHECK_THAT(error_of(nodes + "users: [{ name: a, password_env: MERIDIAN_TEST_UNSET_VARIABLE }]\n"),
             Catch::Contains("users[0].password_env: the environment variable MERIDIAN_TEST_UNSET_VARIABLE is not set"));
  auto both = error_of(nodes + "users: [{ name: a, password: x, password_env: MERIDIAN_TEST_APP_SECRET }]\n");
  CHECK_THAT(both, Catch::Contains("set one of password, password_file or password_env"));
  CHECK_THAT(both, !Catch::Contains("env-s3cret"));
  ::unsetenv("MERIDIAN_TEST_APP_SECRET");
  ::unsetenv("MERIDIAN_TEST_ADMIN_TOKEN");
}

TEST_CASE("coordination and failover sections", "[proxy][config]") {
  const std::string with_monitor = minimal + "monitor: { user: mon }\n";
  auto c = load_config_string(with_monitor + R"(
coordination: { etcd: [127.0.0.1:2379, 10.0.0.2:2379], cluster: prod, lease_ttl: 4s, regions: 3 }
failover:
  user: admin
  password: pw
  detection: 1500ms
  candidate_order: [eu-west-1]
  prefer_ahead: 2MiB
  max_data_loss: 16MiB
  promote_command: aws rds promote-read-replica --db-instance-identifier meridian-{node} --region {region}
)");
  CHECK(c.coordination.etcd == std::vector<std::string>{"127.0.0.1:2379", "10.0.0.2:2379"});
  CHECK(c.coordination.cluster == "prod");
  CHECK(c.coordination.lease_ttl == std::chrono::seconds(4));
  CHECK(c.coordination.regions == 3);
  CHECK(c.coordination.authority_margin == std::chrono::milliseconds(500));
  CHECK(c.coordination.write_wait == std::chrono::milliseconds(2000));
  CHECK(c.failover.enabled());
  CHECK(c.failover.automatic);
  CHECK(c.failover.detection == std::chrono::milliseconds(1500));
  CHECK(c.failover.candidate_order == std::vector<std::string>{"eu-west-1"});
  CHECK(c.failover.measured_distance);
  CHECK_FALSE(load_config_string(with_monitor + "failover: { user: a, nearest: configured }\n").failover.measured_distance);
  CHECK_THAT(error_of(with_monitor + "failover: { user: a, nearest: closest }\n"),
             Catch::Contains("failover.nearest: must be measured or configured"));
  CHECK(c.failover.prefer_ahead_bytes == 2u << 20);
  CHECK(c.failover.max_data_loss_bytes == 16u << 20);
  CHECK_THAT(c.failover.promote_command, Catch::Contains("--region {region}"));
  CHECK_FALSE(load_config_string(minimal).failover.enabled());
  // Work held for a failover: how long, and for how many clients at once.
  CHECK(c.failover.hold_timeout == std::chrono::seconds(15));
  CHECK(c.failover.hold_clients == 1000);
  auto h = load_config_string(with_monitor + "failover: { user: a, hold_timeout: 0s, hold_clients: 5 }\n");
  CHECK(h.failover.hold_timeout == std::chrono::milliseconds(0));
  CHECK(h.failover.hold_clients == 5);
  CHECK_THAT(error_of(with_monitor + "failover: { user: a, hold_clients: -1 }\n"), Catch::Contains("failover.hold_clients"));
  CHECK_THAT(error_of(with_monitor + "failover: { user: a, hold_timeout: soon }\n"), Catch::Contains("failover.hold_timeout"));

  CHECK_THAT(error_of(minimal + "failover: { user: admin }\n"), Catch::Contains("monitor"));
  CHECK_THAT(error_of(with_monitor + "failover: { password: x }\n"), Catch::Contains("failover.user"));
  CHECK_THAT(error_of(with_monitor + "failover: { user: a, candidate_order: [mars] }\n"),
             Catch::Contains("failover.candidate_order[0]"));
  CHECK_THAT(error_of(with_monitor + "failover: { user: a, automatic: maybe }\n"), Catch::Contains("failover.automatic"));
  CHECK_THAT(error_of(with_monitor + "coordination: { etcd: [nohostport] }\n"), Catch::Contains("coordination.etcd[0]"));
  CHECK_THAT(error_of(with_monitor + "coordination: { etcd: [a:1], lease_ttl: 1500ms }\n"),
             Catch::Contains("coordination.lease_ttl"));
  // Write authority: the margin under the TTL, and how long a write waits for authority.
  auto a = load_config_string(with_monitor + "coordination: { etcd: [a:1], lease_ttl: 4s, authority_margin: 800ms, write_wait: 0s }\n");
  CHECK(a.coordination.authority_margin == std::chrono::milliseconds(800));
  CHECK(a.coordination.write_wait == std::chrono::milliseconds(0));
  CHECK_THAT(error_of(with_monitor + "coordination: { etcd: [a:1], lease_ttl: 3s, authority_margin: 2s }\n"),
             Catch::Contains("coordination.authority_margin"));
  CHECK_THAT(error_of(with_monitor + "coordination: { etcd: [a:1], authority_margin: 10ms }\n"),
             Catch::Contains("coordination.authority_margin"));
  CHECK_THAT(error_of(with_monitor + "coordination: { etcd: [a:1], write_wait: soon }\n"),
             Catch::Contains("coordination.write_wait"));
}

TEST_CASE("client TLS: allowed once a certificate is configured, paths relative to the config", "[proxy][config]") {
  const std::string nodes = "nodes: [{ name: p, host: h, role: primary }]\n";
  auto off = meridian::proxy::load_config_string("region: r\n" + nodes, "/etc/meridian");
  CHECK(off.tls.client == meridian::proxy::client_tls::disable);
  auto on = meridian::proxy::load_config_string("region: r\n" + nodes + "tls: { cert: tls/server.crt, key: /keys/server.key }\n",
                                                "/etc/meridian");
  CHECK(on.tls.client == meridian::proxy::client_tls::allow);
  CHECK(on.tls.cert_file == "/etc/meridian/tls/server.crt");
  CHECK(on.tls.key_file == "/keys/server.key");
  CHECK(on.tls.min_version == "1.3");
  auto required = meridian::proxy::load_config_string(
      "region: r\n" + nodes + "tls: { client: required, cert: c, key: k, min_version: '1.2' }\n", "/");
  CHECK(required.tls.client == meridian::proxy::client_tls::required);
  CHECK(required.tls.min_version == "1.2");
}

TEST_CASE("YAML shapes the loader does not expect are refused, not thrown through", "[config]") {
  // Found by the config fuzz target: a mapping whose key is itself a collection.
  CHECK_THROWS_WITH(load_config_string("{ [{-ay}]}"), Catch::Contains("not a plain name"));
  CHECK_THROWS_AS(load_config_string("nodes: { [a]: 1 }"), config_error);
}
