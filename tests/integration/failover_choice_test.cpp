// Failovers on a sandbox of their own, one after another, each testing one part of the choice
// and completion of a failover: synchronous replication losing nothing, the most caught-up
// replica winning over the nearest, a failover finished by another Meridian when the leader
// dies in the middle of it, and the RPO guard holding an automatic promotion for an operator.
// Links are cut with the sandbox's relay ("sandbox net"); every wait polls for its condition.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {

std::string status() { return sandbox::script_output("ctl status").output; }
bool status_has(const std::string& text) { return status().find(text) != std::string::npos; }
std::string failover_record() { return sandbox::script_output("etcd-get failover").output; }

// The region of the leading Meridian, from "leader <region>/<host>/<pid>" in meridianctl status.
std::string leader_region() {
  auto s = status();
  auto at = s.find("leader ");
  if (at == std::string::npos) return "";
  at += 7;
  return s.substr(at, s.find('/', at) - at);
}

std::optional<std::string> on_node(int region, const std::string& sql) {
  pg_connection c(sandbox::admin_dsn(region));
  return c.ok() ? c.scalar(sql) : std::nullopt;
}

// A statement run on a node directly; true when it succeeded.
bool run_on(int region, const std::string& sql) {
  pg_connection c(sandbox::admin_dsn(region));
  return c.ok() && c.sqlstate_of(sql).empty();
}

// One write through a region's Meridian on a fresh connection: the server port it ran on, or "".
std::string write_through(int region) {
  pg_connection c(sandbox::dsn(region));
  if (!c.ok()) return "";
  PGresult* r = PQexec(c.raw(), "WITH w AS (INSERT INTO choice_log VALUES (1) RETURNING 1) SELECT inet_server_port() FROM w");
  std::string port = PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "";
  PQclear(r);
  return port;
}

// The round trip region `from`'s Meridian last measured to `node`, as published in its view
// (microseconds; -1 when it published none).
long long measured_rtt_us(const std::string& from, const std::string& node) {
  auto view = nlohmann::json::parse(sandbox::script_output("etcd-get views/" + from).output, nullptr, false);
  if (!view.is_object() || !view.contains("nodes") || !view["nodes"].contains(node)) return -1;
  return view["nodes"][node].value("rtt_us", -1LL);
}

// Writes about `mib` MiB of WAL on a node directly.
void write_wal(int region, int mib) {
  pg_connection c(sandbox::admin_dsn(region));
  REQUIRE(c.ok());
  c.scalar("CREATE TABLE IF NOT EXISTS choice_bulk (id int, pad text)");
  const auto start = c.scalar("SELECT pg_current_wal_lsn()");
  for (int i = 0; i < 100; ++i) {
    c.scalar("INSERT INTO choice_bulk SELECT g, repeat('x', 200) FROM generate_series(1, 5000) g");
    auto written = c.scalar("SELECT pg_current_wal_lsn() - '" + *start + "'::pg_lsn");
    if (std::stoll(*written) > static_cast<long long>(mib) << 20) return;
  }
  FAIL("could not write " << mib << " MiB of WAL");
}

}  // namespace

TEST_CASE("synchronous replication to eu-west-1: every acknowledged write survives the primary's loss",
          "[failover][sync]") {
  REQUIRE(run_on(us, "ALTER SYSTEM SET synchronous_standby_names = '\"eu-west-1\"'"));
  REQUIRE(run_on(us, "SELECT pg_reload_conf()"));
  REQUIRE(eventually([] { return on_node(us, "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'eu-west-1'") == "sync"; }, 30s));
  constexpr int clients = 12;  // four through each region's Meridian
  {
    pg_connection setup(sandbox::dsn(us));
    REQUIRE(setup.ok());
    setup.scalar("CREATE TABLE choice_log (v int)");
    setup.scalar("CREATE TABLE counters (client int PRIMARY KEY, n bigint NOT NULL)");
    setup.scalar("INSERT INTO counters SELECT g, 0 FROM generate_series(0, " + std::to_string(clients - 1) + ") g");
  }
  // Each client increments its own counter and remembers the last value acknowledged to it.
  std::atomic<bool> stop{false};
  std::vector<long long> acknowledged(clients, 0);
  std::vector<int> failures(clients, 0);
  joined_threads writers{stop, {}};
  for (int c = 0; c < clients; ++c) {
    writers.threads.emplace_back([&, c] {
      const std::string increment = "UPDATE counters SET n = n + 1 WHERE client = " + std::to_string(c) + " RETURNING n";
      while (!stop) {
        pg_connection conn(sandbox::dsn(c % 3));
        while (!stop && conn.ok()) {
          PGresult* r = PQexec(conn.raw(), increment.c_str());
          const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
          if (ok) acknowledged[static_cast<std::size_t>(c)] = std::stoll(PQgetvalue(r, 0, 0));
          PQclear(r);
          if (!ok) {
            ++failures[static_cast<std::size_t>(c)];
            break;  // a new connection
          }
        }
        if (!stop && !conn.ok()) std::this_thread::sleep_for(50ms);  // the proxy refused: retry shortly
      }
    });
  }
  REQUIRE(eventually([&] {
    for (auto a : acknowledged)
      if (a < 5) return false;
    return true;
  }, 30s));
  REQUIRE(sandbox::script("kill-node us-east-1") == 0);
  // Writes go on through every region once eu-west-1 is promoted.
  for (int r : {us, eu, ap}) {
    INFO(region_name(r));
    REQUIRE(eventually([r] { return write_through(r) == pg_port_str(eu); }, 60s));
  }
  const auto after_failover = acknowledged;
  REQUIRE(eventually([&] {
    for (std::size_t c = 0; c < acknowledged.size(); ++c)
      if (acknowledged[c] <= after_failover[c]) return false;
    return true;
  }, 30s));
  stop = true;
  for (auto& t : writers.threads) t.join();
  // Every acknowledged increment is on the new primary.
  long long lost = 0;
  for (int c = 0; c < clients; ++c) {
    auto n = on_node(eu, "SELECT n FROM counters WHERE client = " + std::to_string(c));
    REQUIRE(n);
    const auto ack = acknowledged[static_cast<std::size_t>(c)];
    INFO("client " << c << ": acknowledged " << ack << ", on the new primary " << *n);
    CHECK(std::stoll(*n) >= ack);
    lost += std::max(0LL, ack - std::stoll(*n));
  }
  CHECK(lost == 0);
  // The nearest replica, caught up, was chosen.
  CHECK(eventually([] { return failover_record().find("\"state\":\"done\"") != std::string::npos; }, 30s));
  auto record = failover_record();
  INFO(record);
  CHECK_THAT(record, Catch::Contains("\"to\":\"eu-west-1\"") && Catch::Contains("eu-west-1 is the nearest caught-up replica"));
  CHECK(status_has("epoch 2: primary eu-west-1"));

  // Back to three nodes for what follows; the old primary's synchronous setting goes with it.
  auto rejoined = sandbox::script_output("ctl rejoin us-east-1");
  INFO(rejoined.output);
  REQUIRE(rejoined.exit_code == 0);
  REQUIRE(run_on(us, "ALTER SYSTEM RESET synchronous_standby_names"));
  REQUIRE(run_on(us, "SELECT pg_reload_conf()"));
}

TEST_CASE("nearness is the measured round trip, and the most caught-up replica wins when the nearest lags",
          "[failover][choice]") {
  // eu-west-1 is the primary (epoch 3); us-east-1 and ap-southeast-1 replicate from it.
  REQUIRE(status_has("epoch 3: primary eu-west-1\n"));
  // ap-southeast-1 moves nearer to eu-west-1 (10 ms one way, us-east-1 stays at 40): it is now
  // the nearest candidate, though the configuration (no candidate_order: the order of nodes)
  // puts us-east-1 first. Its region's Meridian measures it.
  REQUIRE(sandbox::script("net delay eu-west-1 ap-southeast-1 10") == 0);
  REQUIRE(eventually([] {
    const auto ap_rtt = measured_rtt_us("ap-southeast-1", "eu-west-1");
    return ap_rtt > 0 && ap_rtt < 40'000 && measured_rtt_us("us-east-1", "eu-west-1") > 75'000;
  }, 30s));
  // ap-southeast-1 then stops receiving WAL, and falls more than failover.prefer_ahead (1 MiB)
  // behind us-east-1.
  REQUIRE(sandbox::script("net cut ap-southeast-1 eu-west-1/postgres") == 0);
  write_wal(eu, 3);
  const auto primary_lsn = on_node(eu, "SELECT pg_current_wal_lsn()");
  REQUIRE(eventually([&] { return on_node(us, "SELECT pg_last_wal_receive_lsn() >= '" + *primary_lsn + "'") == "t"; }, 30s));
  REQUIRE(sandbox::script("kill-node eu-west-1") == 0);
  REQUIRE(eventually([] { return status_has("epoch 4: primary us-east-1"); }, 30s));
  auto record = failover_record();
  INFO(record);
  CHECK_THAT(record, Catch::Contains("us-east-1 is ") && Catch::Contains(" bytes ahead of ap-southeast-1"));
  // Both weighed, nearest first, with the distances measured before the loss.
  auto status = nlohmann::json::parse(record, nullptr, false);
  REQUIRE(status.contains("candidates"));
  REQUIRE(status["candidates"].size() == 2);
  CHECK(status["candidates"][0].value("node", "") == "ap-southeast-1");
  CHECK(status["candidates"][0].value("distance_ms", 0.0) < 40);
  CHECK(status["candidates"][1].value("node", "") == "us-east-1");
  CHECK(status["candidates"][1].value("distance_ms", 0.0) > 75);
  REQUIRE(sandbox::script("net delay eu-west-1 ap-southeast-1 80") == 0);
  // ap-southeast-1 follows the new primary once the link heals, and has every write.
  REQUIRE(sandbox::script("net heal") == 0);
  CHECK(eventually([] { return on_node(ap, "SELECT sender_port FROM pg_stat_wal_receiver") == pg_port_str(us); }, 60s));
  CHECK(eventually([] { return on_node(ap, "SELECT count(*) FROM choice_bulk") == on_node(us, "SELECT count(*) FROM choice_bulk"); }, 30s));
  auto rejoined = sandbox::script_output("ctl rejoin eu-west-1");
  INFO(rejoined.output);
  REQUIRE(rejoined.exit_code == 0);
}

TEST_CASE("the leader killed in the middle of a failover: another Meridian finishes it", "[failover][leader]") {
  // us-east-1 is the primary (epoch 5); eu-west-1 and ap-southeast-1 replicate from it.
  REQUIRE(status_has("epoch 5: primary us-east-1\n"));
  // The leader must be able to die without taking the repointed replica's region with it.
  if (leader_region() == "ap-southeast-1") {
    REQUIRE(sandbox::script("kill-meridian ap-southeast-1") == 0);
    REQUIRE(eventually([] { auto l = leader_region(); return !l.empty() && l != "ap-southeast-1"; }, 30s));
    REQUIRE(sandbox::script("start-meridian ap-southeast-1") == 0);
  }
  const auto leader = leader_region();
  REQUIRE(!leader.empty());
  INFO("leader: " << leader);
  // The leader cannot reach ap-southeast-1's server: its repointing hangs there.
  REQUIRE(sandbox::script("net cut " + leader + " ap-southeast-1/postgres") == 0);
  REQUIRE(sandbox::script("kill-node us-east-1") == 0);
  REQUIRE(eventually([] {
    auto r = failover_record();
    return r.find("\"state\":\"repointing\"") != std::string::npos && r.find("\"epoch\":6") != std::string::npos;
  }, 30s));
  REQUIRE(sandbox::script("kill-meridian " + leader) == 0);
  // Another Meridian takes the lead and finishes: ap-southeast-1 streams from eu-west-1.
  REQUIRE(eventually([] {
    auto r = failover_record();
    return r.find("\"state\":\"done\"") != std::string::npos && r.find("\"epoch\":6") != std::string::npos;
  }, 60s));
  auto record = failover_record();
  INFO(record);
  CHECK_THAT(record, Catch::Contains("\"begun_by\":\"" + leader + "/"));
  CHECK_THAT(record, !Catch::Contains("\"leader\":\"" + leader + "/"));
  CHECK_THAT(record, Catch::Contains("\"repoint_errors\":[]"));
  CHECK(on_node(ap, "SELECT sender_port FROM pg_stat_wal_receiver") == pg_port_str(eu));
  for (int r : {us, eu, ap}) {
    if (region_name(r) == leader) continue;
    INFO(region_name(r));
    CHECK(eventually([r] { return write_through(r) == pg_port_str(eu); }, 30s));
  }
  REQUIRE(sandbox::script("net heal") == 0);
  REQUIRE(sandbox::script("start-meridian " + leader) == 0);
  CHECK(eventually([] { return status_has("epoch 6: primary eu-west-1"); }, 30s));
}

TEST_CASE("no automatic promotion beyond the RPO guard, but an operator's promote goes ahead", "[failover][rpo]") {
  // eu-west-1 is the primary (epoch 6), ap-southeast-1 its only replica (us-east-1 is down).
  REQUIRE(status_has("epoch 6: primary eu-west-1"));
  REQUIRE(sandbox::script("net cut ap-southeast-1 eu-west-1/postgres") == 0);
  write_wal(eu, 10);  // more than the sandbox's failover.max_data_loss (8 MiB)
  // The Meridians have seen the primary that far ahead of the replica before it dies.
  REQUIRE(eventually([] { return node_gauge(eu, "meridian_node_lag_bytes", ap) > 9 << 20; }, 10s));
  REQUIRE(sandbox::script("kill-node eu-west-1") == 0);
  REQUIRE(eventually([] { return failover_record().find("\"state\":\"blocked\"") != std::string::npos; }, 30s));
  auto record = failover_record();
  INFO(record);
  CHECK_THAT(record, Catch::Contains("over the 8388608-byte guard"));
  CHECK(status_has("epoch 6: primary eu-west-1"));
  CHECK(on_node(ap, "SELECT pg_is_in_recovery()") == "t");
  // The operator accepts the loss.
  auto promoted = sandbox::script_output("ctl promote ap-southeast-1");
  INFO(promoted.output);
  CHECK(promoted.exit_code == 0);
  CHECK(status_has("epoch 7: primary ap-southeast-1"));
  CHECK(eventually([] { return write_through(ap) == pg_port_str(ap); }, 30s));
  REQUIRE(sandbox::script("net heal") == 0);
}
