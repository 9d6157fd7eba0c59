// Failover on a sandbox of its own: the primary is killed with SIGKILL while pgbench writes
// through all three regions' Meridians; the Meridians, coordinated through the sandbox's
// three-member etcd, detect it, promote the eu-west-1 replica, repoint ap-southeast-1 and fence
// the old primary when it comes back. Nothing here waits on a fixed delay: every step polls
// for the condition it needs, within a bound.
#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <fstream>
#include <memory>
#include <string_view>
#include <vector>
#include <thread>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {



// One write through a region's Meridian on a fresh connection: the server port it ran on,
// or "" when it failed.
std::string write_through(int region, int value) {
  pg_connection c(sandbox::dsn(region));
  if (!c.ok()) return "";
  PGresult* r = PQexec(c.raw(), ("INSERT INTO itest_failover VALUES (" + std::to_string(value) + ", '" +
                                 region_name(region) + "') RETURNING inet_server_port()").c_str());
  std::string port = PQresultStatus(r) == PGRES_TUPLES_OK ? PQgetvalue(r, 0, 0) : "";
  PQclear(r);
  return port;
}

std::string pgbench(int region, const std::string& args) {
  return "PGPASSWORD=app-secret /usr/lib/postgresql/15/bin/pgbench -n -h 127.0.0.1 -p " +
         std::to_string(sandbox::meridian_port(region)) + " -U app " + args + " app 2>&1";
}
}  // namespace

TEST_CASE("the primary killed under load: every region writes to the promoted replica, the old one is fenced",
          "[failover]") {
  {
    pg_connection setup(sandbox::dsn(us));
    REQUIRE(setup.ok());
    setup.scalar("CREATE TABLE IF NOT EXISTS itest_failover (v int, region text)");
    REQUIRE(run_command(pgbench(us, "-i -q -s 1")).exit_code == 0);
  }
  for (int r : {us, eu, ap}) REQUIRE(write_through(r, 0) == pg_port_str(us));
  // The replicas have everything written so far (no acknowledged write may be lost).
  pg_connection eu_admin(sandbox::admin_dsn(eu));
  REQUIRE(eu_admin.ok());
  REQUIRE(eventually([&] { return eu_admin.scalar("SELECT count(*) FROM itest_failover") == "3"; }, 10s));

  // Load through every region while the primary dies.
  std::vector<std::thread> load;
  for (int r : {us, eu, ap})
    load.emplace_back([r] { run_command(pgbench(r, "-c 4 -j 4 -T 6")); });
  std::this_thread::sleep_for(1s);  // the load is running: that is the point of the wait
  // The nearest replica is promoted even when the other received more, having first streamed
  // what it lacked from that one (failover.prefer_ahead, 1 MiB): nothing forks, nothing the
  // other received is lost. eu-west-1's stream stops first, so ap-southeast-1 has more.
  {
    pg_connection eu_hold(sandbox::admin_dsn(eu));
    REQUIRE(eu_hold.ok());
    REQUIRE(eu_hold.sqlstate_of("ALTER SYSTEM SET primary_conninfo = ''").empty());
    REQUIRE(eu_hold.scalar("SELECT pg_reload_conf()") == "t");
    REQUIRE(eventually([&] { return eu_hold.scalar("SELECT count(*) FROM pg_stat_wal_receiver") == "0"; }, 10s));
    const auto held_at = eu_hold.scalar("SELECT pg_last_wal_receive_lsn()");
    REQUIRE(held_at);
    pg_connection ap_admin(sandbox::admin_dsn(ap));
    REQUIRE(ap_admin.ok());
    REQUIRE(eventually([&] {
      return ap_admin.scalar("SELECT pg_last_wal_receive_lsn() > '" + *held_at + "'::pg_lsn") == "t";
    }, 10s));
  }
  // A reader in the primary's region, on one connection through its Meridian: once the primary
  // is down, its reads go to the nearest replica that may serve them (issue 24). A read already
  // running on the primary when it dies gets 57P01 (retrying it is a later slice of issue 24),
  // and so may one begun just after the kill on a pooled connection whose death had not reached
  // Meridian yet: any other error of a read begun once the kill is done fails the test.
  std::atomic<bool> stop_reading{false};
  std::atomic<bool> kill_done{false};
  std::atomic<int> reads{0}, read_errors{0}, in_flight_errors{0}, no_replica_errors{0}, reads_lost{0}, reader_closed{0};
  std::string first_read_error;
  joined_threads reader{stop_reading, {}};
  reader.threads.emplace_back([&] {
    pg_connection c(sandbox::dsn(us));
    bool reconnected = false;
    while (!stop_reading) {
      const bool after_kill = kill_done;
      if (after_kill && !reconnected) {
        // A client that connects while the primary is down reads too.
        PQreset(c.raw());
        reconnected = true;
      }
      PGresult* r = PQexec(c.raw(), "SELECT count(*) FROM itest_failover");
      const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        ++reads;
      } else if (!after_kill) {
        ++in_flight_errors;
      } else if (state && std::string_view(state) == "57P01") {
        ++reads_lost;  // began on a connection that had died with the primary
      } else if (node_gauge(us, "meridian_node_readable", eu) + node_gauge(us, "meridian_node_readable", ap) == 0) {
        // No replica within its lag limits (eu-west-1 is held back above, ap-southeast-1 may
        // lag under the load, more so in a sanitized build): the read has nowhere to go.
        ++no_replica_errors;
      } else if (read_errors++ == 0) {
        first_read_error = PQresultErrorMessage(r);
      }
      PQclear(r);
      // Meridian keeps the client's connection through the loss of its server (issue 24).
      if (PQstatus(c.raw()) == CONNECTION_BAD) {
        ++reader_closed;
        PQreset(c.raw());
      }
      std::this_thread::sleep_for(20ms);
    }
  });
  // A writer per region, each on one connection through its Meridian (issue 24): a write that
  // arrives while the primary is lost never reached it, so it is held for the new primary, not
  // failed (their rows are negative, apart from the checks below). A write running on the
  // primary when it dies gets 08007 (its outcome is unknown), and so may one begun just after
  // the kill on a pooled connection whose death had not reached Meridian yet (the backend's
  // FATAL, or the relay's close one link delay later); the client's connection stays open. Any
  // other error of a write begun once the kill is done (refused, no primary, cannot connect),
  // and any client connection closed, fails the test.
  struct writer_tally {
    std::atomic<int> acked{0}, after_kill_acked{0}, in_flight_errors{0}, server_lost{0}, errors{0}, closed{0};
    std::atomic<long> longest_ms{0};
    std::string first_error;
  };
  std::array<writer_tally, 3> writers;
  std::atomic<bool> stop_writing{false};
  joined_threads writer_threads{stop_writing, {}};
  for (int r : {us, eu, ap}) {
    writer_threads.threads.emplace_back([&, r] {
      auto& w = writers[static_cast<std::size_t>(r)];
      pg_connection c(sandbox::dsn(r));
      for (int i = 0; !stop_writing; ++i) {
        const bool after_kill = kill_done;
        const auto began = std::chrono::steady_clock::now();
        PGresult* res = PQexec(c.raw(), ("INSERT INTO itest_failover VALUES (" + std::to_string(-1'000'000 * (r + 1) - i) +
                                         ", 'writer')").c_str());
        const bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began).count();
        if (ok) {
          ++w.acked;
          if (after_kill) ++w.after_kill_acked;
          if (after_kill && ms > w.longest_ms) w.longest_ms = ms;
        } else if (!after_kill) {
          ++w.in_flight_errors;
        } else if (const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                   state && PQstatus(c.raw()) == CONNECTION_OK && std::string_view(state) == "08007") {
          ++w.server_lost;
        } else if (w.errors++ == 0) {
          w.first_error = std::string(state ? state : "(no SQLSTATE)") + " " + PQresultErrorMessage(res);
        }
        PQclear(res);
        // Meridian keeps the client's connection through the loss of its server.
        if (PQstatus(c.raw()) == CONNECTION_BAD) {
          ++w.closed;
          PQreset(c.raw());
        }
        std::this_thread::sleep_for(20ms);
      }
    });
  }
  REQUIRE(eventually([&] { return writers[0].acked > 0 && writers[1].acked > 0 && writers[2].acked > 0; }, 10s));

  REQUIRE(sandbox::script("kill-node us-east-1") == 0);
  kill_done = true;
  const auto killed = std::chrono::steady_clock::now();

  // Writes succeed again through every region's Meridian, on the promoted eu replica.
  int value = 1;
  for (int r : {eu, ap, us}) {
    std::string port;
    REQUIRE(eventually([&] { return !(port = write_through(r, value)).empty(); }, 60s));
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed);
    WARN("kill -> first successful write through " << region_name(r) << ": " << ms.count() << " ms");
    CHECK(port == pg_port_str(eu));
    ++value;
  }
  // Every writer wrote on the new primary too.
  CHECK(eventually([&] {
    return writers[0].after_kill_acked > 0 && writers[1].after_kill_acked > 0 && writers[2].after_kill_acked > 0;
  }, 30s));
  writer_threads.join();
  for (int r : {us, eu, ap}) {
    const auto& w = writers[static_cast<std::size_t>(r)];
    WARN("writer through " << region_name(r) << ": " << w.acked << " writes acknowledged, " << w.after_kill_acked
         << " begun after the kill (the longest took " << w.longest_ms << " ms: held for the new primary); "
         << w.in_flight_errors << " running when the primary died failed; " << w.server_lost
         << " begun after it died with a server connection that had died with it (08007); " << w.errors
         << " begun after the kill failed " << w.first_error << "; connections closed: " << w.closed);
    CHECK(w.errors == 0);
    CHECK(w.closed == 0);
  }
  for (auto& t : load) t.join();
  reader.join();
  WARN("reads through us-east-1 while its primary was down: " << reads << ", errors " << read_errors << " "
       << first_read_error << "; reads running on it when it died that failed: " << in_flight_errors
       << "; begun after the kill on a connection that had died with it (57P01): " << reads_lost
       << "; reads that failed while no replica was within its lag limits: " << no_replica_errors
       << "; connections closed: " << reader_closed);
  CHECK(read_errors == 0);
  CHECK(reader_closed == 0);
  CHECK(eu_admin.scalar("SELECT pg_is_in_recovery()") == "f");
  // Every Meridian routes by the new topology.
  for (int r : {us, eu, ap}) {
    INFO(region_name(r));
    CHECK(eventually([&] { return node_gauge(r, "meridian_node_primary", eu) == 1; }, 10s));
    const auto exposition = http_get(sandbox::metrics_port(r), "/metrics");
    CHECK(metric(exposition, "meridian_topology_epoch", "") == 2);
    CHECK(metric(exposition, "meridian_primary_changes_total", "") == 1);
    // The writers' held work (and write_through's) went on to the new primary.
    CHECK(metric(exposition, "meridian_held_total", "outcome=\"served\"") >= 1);
    CHECK(metric(exposition, "meridian_held_total", "outcome=\"refused\"") == 0);
    CHECK(metric(exposition, "meridian_clients_held", "") == 0);
  }
  // ap-southeast-1 streams from the new primary and has the writes made after the failover.
  pg_connection ap_admin(sandbox::admin_dsn(ap));
  REQUIRE(ap_admin.ok());
  CHECK(eventually([&] { return ap_admin.scalar("SELECT count(*) FROM itest_failover WHERE v > 0") == "3"; }, 30s));
  CHECK(*ap_admin.scalar("SELECT sender_port FROM pg_stat_wal_receiver") == pg_port_str(eu));
  // Reads through ap go to its replica again.
  pg_connection ap_client(sandbox::dsn(ap));
  CHECK(eventually([&] { return ap_client.scalar("SELECT inet_server_port()") == pg_port_str(ap); }, 30s));

  // The old primary comes back as a primary: it is fenced, and nothing reaches it.
  REQUIRE(sandbox::script("start-node us-east-1") == 0);
  REQUIRE(eventually([&] {
    pg_connection o(sandbox::admin_dsn(us));
    return o.ok() && o.scalar("SHOW default_transaction_read_only") == "on";
  }, 30s));
  for (int r : {us, eu, ap}) CHECK(write_through(r, 100 + r) == pg_port_str(eu));
  pg_connection us_admin(sandbox::admin_dsn(us));
  REQUIRE(us_admin.ok());
  CHECK(us_admin.scalar("SELECT count(*) FROM itest_failover WHERE v >= 100") == "0");
  // meridianctl shows the new topology from every region.
  for (const char* r : {"us-east-1", "eu-west-1", "ap-southeast-1"}) {
    auto status = sandbox::script_output(std::string("ctl ") + r + " status");
    INFO(status.output);
    CHECK(status.exit_code == 0);
    CHECK_THAT(status.output, Catch::Contains("epoch 2: primary eu-west-1, fenced: us-east-1"));
    CHECK_THAT(status.output, Catch::Contains("last failover"));
    // Every candidate weighed, nearest first by the round trip measured to the lost primary
    // (80 and 220 ms through the relay, plus the probe's own time: up to 45 ms more seen in the
    // sanitized build under the test's load), and the async window at promotion.
    CHECK_THAT(status.output, Catch::Matches(R"([\s\S]*candidates: eu-west-1 \(rank 1, (8|9|1[0-2])\d\.\d ms from the primary[\s\S]*)") &&
                                  Catch::Matches(R"([\s\S]*ap-southeast-1 \(rank 2, 2[2-6]\d\.\d ms from the primary[\s\S]*)"));
    CHECK_THAT(status.output, Catch::Contains(" ms from the primary, received "));
    CHECK_THAT(status.output, Catch::Contains("async window at promotion: "));
  }
  // The record of it in etcd.
  auto status = sandbox::script_output("etcd-get failover");
  INFO(status.output);
  CHECK_THAT(status.output, Catch::Contains("\"state\":\"done\"") && Catch::Contains("\"to\":\"eu-west-1\""));
  CHECK_THAT(status.output, Catch::Contains("\"window_bytes\":") && Catch::Contains("\"candidates\":[{"));
  CHECK_THAT(status.output, Catch::Contains("\"caught_up_from\":\"ap-southeast-1\""));
  // Detected on the evidence of refused connections, and every Meridian released its write
  // authority over the old epoch: the leader did not have to wait it out.
  CHECK_THAT(status.output, Catch::Contains("refused") && Catch::Contains("\"released_ms\":"));
  // The leader's metrics carry the window (the others', none led: NaN).
  int leaders_reporting = 0;
  for (int r : {us, eu, ap}) {
    const auto exposition = http_get(sandbox::metrics_port(r), "/metrics");
    if (metric(exposition, "meridian_failover_window_bytes", "") >= 0) {
      ++leaders_reporting;
      // And up to how long the lost primary may have taken writes no replica received.
      CHECK(metric(exposition, "meridian_failover_blind_seconds", "") > 0);
      // Each candidate weighed: its distance from the lost primary, and which one was chosen.
      CHECK(metric(exposition, "meridian_failover_candidate_chosen", "node=\"eu-west-1\",rank=\"1\"") == 1);
      CHECK(metric(exposition, "meridian_failover_candidate_chosen", "node=\"ap-southeast-1\",rank=\"2\"") == 0);
      CHECK_THAT(metric(exposition, "meridian_failover_candidate_distance_seconds", "node=\"eu-west-1\",rank=\"1\""),
                 Catch::WithinAbs(0.100, 0.030));
      CHECK(metric(exposition, "meridian_failover_candidate_distance_seconds", "node=\"ap-southeast-1\",rank=\"2\"") > 0.2);
    }
  }
  CHECK(leaders_reporting == 1);
}

TEST_CASE("a switchover under load: no client error, no acknowledged write lost", "[failover][switchover]") {
  // Follows the failover above: eu-west-1 is the primary, ap-southeast-1 a replica of it.
  auto before = sandbox::script_output("ctl status");
  INFO(before.output);
  REQUIRE_THAT(before.output, Catch::Contains("primary eu-west-1"));
  pg_connection ap_admin(sandbox::admin_dsn(ap));
  REQUIRE(ap_admin.ok());
  REQUIRE(eventually([&] { return ap_admin.scalar("SELECT status FROM pg_stat_wal_receiver") == "streaming"; }, 30s));

  // Acknowledged writes, one connection per region, counted as they are acknowledged.
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  std::vector<int> acknowledged(3, 0);
  std::vector<int> errors(3, 0);
  for (int r : {us, eu, ap}) {
    writers.emplace_back([&, r] {
      pg_connection c(sandbox::dsn(r));
      for (int i = 1; !stop && c.ok(); ++i) {
        const auto v = std::to_string(1000 * (r + 1) + i);
        if (c.sqlstate_of("INSERT INTO itest_failover VALUES (" + v + ", 'switchover-" + region_name(r) + "')").empty()) {
          acknowledged[static_cast<std::size_t>(r)] = i;
        } else {
          ++errors[static_cast<std::size_t>(r)];
        }
      }
    });
  }
  std::vector<command_result> loads(3);
  std::vector<std::thread> load;
  for (int r : {us, eu, ap}) load.emplace_back([&, r] { loads[static_cast<std::size_t>(r)] = run_command(pgbench(r, "-c 4 -j 4 -T 5")); });
  std::this_thread::sleep_for(1s);  // under load: that is the point of the wait
  auto switched = sandbox::script_output("ctl switchover ap-southeast-1");
  INFO(switched.output);
  CHECK(switched.exit_code == 0);
  for (auto& t : load) t.join();
  std::this_thread::sleep_for(500ms);  // a little more writing on the new primary
  stop = true;
  for (auto& t : writers) t.join();

  for (int r : {us, eu, ap}) {
    INFO(region_name(r) << ": " << loads[static_cast<std::size_t>(r)].output);
    CHECK(loads[static_cast<std::size_t>(r)].exit_code == 0);
    CHECK_THAT(loads[static_cast<std::size_t>(r)].output, Catch::Contains("number of failed transactions: 0"));
    CHECK(errors[static_cast<std::size_t>(r)] == 0);
    CHECK(acknowledged[static_cast<std::size_t>(r)] > 0);
  }
  // Every acknowledged write is on the new primary.
  REQUIRE(ap_admin.scalar("SELECT pg_is_in_recovery()") == "f");
  for (int r : {us, eu, ap}) {
    const auto expected = acknowledged[static_cast<std::size_t>(r)];
    auto n = ap_admin.scalar("SELECT count(*) FROM itest_failover WHERE region = 'switchover-" + std::string(region_name(r)) +
                             "' AND v <= " + std::to_string(1000 * (r + 1) + expected));
    CHECK(n == std::to_string(expected));
  }
  for (const char* r : {"us-east-1", "eu-west-1", "ap-southeast-1"}) {
    auto status = sandbox::script_output(std::string("ctl ") + r + " status");
    INFO(status.output);
    CHECK_THAT(status.output, Catch::Contains("epoch 3: primary ap-southeast-1"));
  }
  // New writes land on ap's server.
  CHECK(write_through(eu, 5000) == pg_port_str(ap));
}

TEST_CASE("fenced old primaries rejoin as replicas of the new primary", "[failover][rejoin]") {
  // Follows the switchover above: ap-southeast-1 is the primary; us-east-1 and eu-west-1 are fenced.
  auto before = sandbox::script_output("ctl status");
  INFO(before.output);
  REQUIRE_THAT(before.output, Catch::Contains("primary ap-southeast-1, fenced: us-east-1 eu-west-1"));
  for (const char* node : {"us-east-1", "eu-west-1"}) {
    auto r = sandbox::script_output(std::string("ctl rejoin ") + node);
    INFO(node << ": " << r.output);
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.output, Catch::Contains(std::string(node) + " is a replica of ap-southeast-1"));
  }
  auto after = sandbox::script_output("ctl status");
  INFO(after.output);
  CHECK_THAT(after.output, Catch::Contains("epoch 5: primary ap-southeast-1\n"));
  // Both stream from the primary and have every write; eu reads are served by eu again.
  for (int r : {us, eu}) {
    pg_connection admin(sandbox::admin_dsn(r));
    REQUIRE(admin.ok());
    CHECK(admin.scalar("SELECT pg_is_in_recovery()") == "t");
    CHECK(admin.scalar("SELECT sender_port FROM pg_stat_wal_receiver") == pg_port_str(ap));
    CHECK(admin.scalar("SHOW default_transaction_read_only") == "off");
  }
  CHECK(write_through(ap, 6000) == pg_port_str(ap));
  pg_connection eu_admin(sandbox::admin_dsn(eu));
  CHECK(eventually([&] { return eu_admin.scalar("SELECT count(*) FROM itest_failover WHERE v = 6000 AND region = 'ap-southeast-1'") == "1"; }, 10s));
  pg_connection eu_client(sandbox::dsn(eu));
  CHECK(eventually([&] { return eu_client.scalar("SELECT inet_server_port()") == pg_port_str(eu); }, 30s));
}

TEST_CASE("the primary cut off from one region only: no failover", "[failover][partition]") {
  // Follows the rejoin above: ap-southeast-1 is the primary of epoch 5.
  REQUIRE_THAT(sandbox::script_output("ctl status").output, Catch::Contains("epoch 5: primary ap-southeast-1\n"));
  REQUIRE(sandbox::script("net cut eu-west-1 ap-southeast-1/postgres") == 0);
  // eu-west-1's Meridian loses the primary; us-east-1's and ap-southeast-1's still reach it.
  REQUIRE(eventually([] { return node_gauge(eu, "meridian_node_up", ap) == 0; }, 10s));
  // One region of three is no majority. Nothing may change over three detection periods (2 s
  // each): a window, since what is checked is that nothing happens.
  const auto seen = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - seen < 6s) {
    CHECK(node_gauge(us, "meridian_node_up", ap) == 1);
    CHECK(write_through(us, 8000) == pg_port_str(ap));
    std::this_thread::sleep_for(250ms);
  }
  auto status = sandbox::script_output("ctl status");
  INFO(status.output);
  CHECK_THAT(status.output, Catch::Contains("epoch 5: primary ap-southeast-1\n"));
  pg_connection ap_admin(sandbox::admin_dsn(ap));
  REQUIRE(ap_admin.ok());
  CHECK(ap_admin.scalar("SELECT pg_is_in_recovery()") == "f");
  REQUIRE(sandbox::script("net heal") == 0);
  CHECK(eventually([] { return node_gauge(eu, "meridian_node_up", ap) == 1; }, 10s));
  CHECK(eventually([] { return write_through(eu, 8001) == pg_port_str(ap); }, 10s));
}

TEST_CASE("the primary cut off from every region: failover, and the old primary, still up, gets nothing",
          "[failover][partition]") {
  REQUIRE_THAT(sandbox::script_output("ctl status").output, Catch::Contains("epoch 5: primary ap-southeast-1\n"));
  // Fencing ends the old primary's sessions: ask it on a new connection each time.
  auto on_ap = [](const std::string& sql) {
    pg_connection c(sandbox::admin_dsn(ap));
    return c.ok() ? c.scalar(sql) : std::nullopt;
  };
  // The rows written through the Meridians after the failover (the switchover's writers used
  // values up from 1000 with regions named switchover-*).
  const std::string after_failover =
      "SELECT count(*) FROM itest_failover WHERE v BETWEEN 9000 AND 9199 AND region NOT LIKE 'switchover-%'";
  // A writer through ap-southeast-1's Meridian, which keeps reaching the old primary next door
  // and etcd: every write it has acknowledged on the old primary must precede the promotion, or
  // two primaries took writes at once (the leader ends the old epoch's write authority first,
  // and promotes lease_ttl + authority_margin later). A poller on eu-west-1's PostgreSQL sees
  // when the promotion happened.
  using steady = std::chrono::steady_clock;
  std::atomic<bool> stop{false};
  std::atomic<int> acked_on_ap{0};
  std::atomic<bool> acked_on_eu{false};
  steady::time_point isolated{};
  struct ack {
    steady::time_point at;
    std::string port;
  };
  std::vector<ack> acks;
  joined_threads writer{stop, {}};
  writer.threads.emplace_back([&] {
    std::unique_ptr<pg_connection> c;
    for (int v = 9300; !stop; ++v) {
      if (!c || !c->ok()) c = std::make_unique<pg_connection>(sandbox::dsn(ap));
      if (!c->ok()) continue;
      PGresult* r = PQexec(c->raw(), ("INSERT INTO itest_failover VALUES (" + std::to_string(v) +
                                      ", 'ending-ap') RETURNING inet_server_port()").c_str());
      if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        acks.push_back({steady::now(), PQgetvalue(r, 0, 0)});
        if (acks.back().port == pg_port_str(ap)) ++acked_on_ap;
        if (acks.back().port == pg_port_str(eu)) acked_on_eu = true;
      } else if (PQstatus(c->raw()) != CONNECTION_OK) {
        c.reset();
      }
      PQclear(r);
    }
  });
  REQUIRE(eventually([&] { return acked_on_ap > 3; }, 10s));
  // Only ap-southeast-1's PostgreSQL is cut off: its region's Meridian and etcd member stay
  // connected, and that Meridian can still reach the old primary inside its region.
  REQUIRE(sandbox::script("net isolate ap-southeast-1/postgres") == 0);
  isolated = steady::now();
  pg_connection eu_admin(sandbox::admin_dsn(eu));
  REQUIRE(eu_admin.ok());
  steady::time_point last_seen_replica = steady::now();
  REQUIRE(eventually([&] {
    const auto asked = steady::now();
    if (eu_admin.scalar("SELECT pg_is_in_recovery()") != "t") return true;
    last_seen_replica = asked;
    return false;
  }, 30s));
  REQUIRE(eventually([] { return sandbox::script_output("ctl status").output.find("epoch 6: primary eu-west-1") != std::string::npos; },
                     30s));
  REQUIRE(eventually([&] { return acked_on_eu.load(); }, 30s));
  writer.join();
  {
    auto ms = [&](steady::time_point t) { return std::chrono::duration_cast<std::chrono::milliseconds>(t - isolated).count(); };
    steady::time_point last_on_old{};
    int after_cut = 0;
    for (const auto& a : acks)
      if (a.port == pg_port_str(ap)) {
        last_on_old = a.at;
        if (a.at > isolated) ++after_cut;
      }
    WARN("ap-southeast-1/postgres isolated -> last write acknowledged on the old primary: " << ms(last_on_old)
         << " ms (" << after_cut << " after the cut, lost with it); eu-west-1 still a replica at " << ms(last_seen_replica)
         << " ms");
    CHECK(last_on_old < last_seen_replica);
  }
  // The leader says how long after the ending it promoted: never less than lease_ttl (3 s) +
  // authority_margin (0.5 s), unless every Meridian holding write authority released it first.
  // ap-southeast-1's releases only once it has fenced its primary, which it does lease_ttl −
  // authority_margin (2.5 s) after it was told of the ending: direct clients of the old primary
  // are stopped before the promotion too.
  {
    auto record = sandbox::script_output("etcd-get failover");
    INFO(record.output);
    const auto at = record.output.find("\"ending_to_promote_ms\":");
    REQUIRE(at != std::string::npos);
    const auto ending_to_promote = std::stoll(record.output.substr(at + 23));
    if (const auto released = record.output.find("\"released_ms\":"); released != std::string::npos) {
      const auto released_ms = std::stoll(record.output.substr(released + 14));
      CHECK(released_ms >= 2500);
      CHECK(released_ms <= ending_to_promote);
    } else {
      CHECK(ending_to_promote >= 3500);
    }
  }
  CHECK(on_ap("SELECT pg_is_in_recovery()") == "f");  // still a primary, behind the partition
  // Every region writes to the new primary, ap-southeast-1's too, though its old primary is next door.
  for (int r : {us, eu, ap}) {
    INFO(region_name(r));
    CHECK(eventually([r] { return write_through(r, 9000 + r) == pg_port_str(eu); }, 10s));
  }
  pg_connection ap_client(sandbox::dsn(ap));
  REQUIRE(ap_client.ok());
  CHECK(ap_client.scalar("SELECT inet_server_port()") != pg_port_str(ap));
  CHECK(on_ap(after_failover).value_or("(no answer)") == "0");
  // The partition heals: the old primary is fenced, and still gets none of the writes.
  REQUIRE(sandbox::script("net heal") == 0);
  CHECK(eventually([&] { return on_ap("SHOW default_transaction_read_only") == "on"; }, 30s));
  for (int r : {us, eu, ap}) CHECK(write_through(r, 9100 + r) == pg_port_str(eu));
  CHECK(on_ap(after_failover).value_or("(no answer)") == "0");
}

namespace {
// How many lines of a region's Meridian log hold `text`.
int log_lines_with(const std::string& region, const std::string& text) {
  std::ifstream in(sandbox::dir() + "/log/meridian-" + region + ".log");
  int n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.find(text) != std::string::npos) ++n;
  return n;
}

int log_lines_anywhere(const std::string& text) {
  return log_lines_with("us-east-1", text) + log_lines_with("eu-west-1", text) + log_lines_with("ap-southeast-1", text);
}
}  // namespace

TEST_CASE("a region that lost write authority fences its own primary: lifted while the majority keeps it, kept when the "
          "majority promotes",
          "[failover][fence]") {
  REQUIRE_THAT(sandbox::script_output("ctl status").output, Catch::Contains("epoch 6: primary eu-west-1, fenced: ap-southeast-1\n"));
  using steady = std::chrono::steady_clock;
  healed_after heal;
  const std::string fenced_line = "fenced the primary eu-west-1 of this region";
  const int fenced_before = log_lines_with("eu-west-1", fenced_line);
  const int lifted_before = log_lines_anywhere("writable again");

  // 1. eu-west-1 is cut off from the etcd majority only: its Meridian loses write authority and
  // fences the primary next to it; the leader, in the majority, holds authority over the same
  // epoch and reaches that primary, so it lifts the fence. No failover.
  cut_from_etcd_majority("eu-west-1", "us-east-1", "ap-southeast-1");
  REQUIRE(eventually([&] { return log_lines_with("eu-west-1", fenced_line) > fenced_before; }, 15s));
  REQUIRE(eventually([&] { return log_lines_anywhere("writable again") > lifted_before; }, 15s));
  // Counted where it happened: the fence in eu-west-1, the lift by the leader elsewhere.
  CHECK(metric(http_get(sandbox::metrics_port(eu), "/metrics"), "meridian_self_fences_total", "action=\"fenced\"") >= 1);
  double lifts = 0;
  for (int r : {us, ap}) lifts += metric(http_get(sandbox::metrics_port(r), "/metrics"), "meridian_self_fences_total", "action=\"lifted\"");
  CHECK(lifts >= 1);
  CHECK(eventually([] { return write_through(us, 9500) == pg_port_str(eu); }, 10s));
  CHECK(eventually([] { return write_through(ap, 9501) == pg_port_str(eu); }, 10s));
  {
    pg_connection direct(sandbox::admin_dsn(eu));
    REQUIRE(direct.ok());
    CHECK(direct.scalar("SHOW default_transaction_read_only") == "off");
    CHECK(direct.sqlstate_of("INSERT INTO itest_failover VALUES (9502, 'direct')").empty());
  }
  // Fenced once for this loss, not again and again: a window, since what is checked is that
  // nothing happens.
  std::this_thread::sleep_for(3s);
  CHECK(log_lines_with("eu-west-1", fenced_line) == fenced_before + 1);
  CHECK_THAT(sandbox::script_output("ctl status").output, Catch::Contains("epoch 6: primary eu-west-1, fenced: ap-southeast-1\n"));
  REQUIRE(sandbox::script("net heal") == 0);
  REQUIRE(eventually([] { return metric(http_get(sandbox::metrics_port(eu), "/metrics"), "meridian_write_authority", "") == 1; },
                     30s));

  // 2. The whole eu-west-1 region is cut off. A direct client there has a transaction open with
  // a write in it. The region's Meridian fences its primary before the majority promotes
  // us-east-1: the open transaction never commits, and direct writes are refused (25006).
  pg_connection open_tx(sandbox::admin_dsn(eu));
  REQUIRE(open_tx.ok());
  REQUIRE(open_tx.sqlstate_of("BEGIN").empty());
  REQUIRE(open_tx.sqlstate_of("INSERT INTO itest_failover VALUES (9600, 'open-tx')").empty());
  REQUIRE(sandbox::script("net isolate eu-west-1") == 0);
  const auto cut = steady::now();
  pg_connection us_admin(sandbox::admin_dsn(us));
  REQUIRE(us_admin.ok());
  steady::time_point fenced{}, last_seen_replica = cut;
  REQUIRE(eventually([&] {
    const auto asked = steady::now();
    if (fenced == steady::time_point{}) {
      pg_connection direct(sandbox::admin_dsn(eu));
      if (direct.ok() && direct.sqlstate_of("INSERT INTO itest_failover VALUES (9601, 'direct')") == "25006") fenced = asked;
    }
    if (us_admin.scalar("SELECT pg_is_in_recovery()") != "t") return fenced != steady::time_point{};
    last_seen_replica = asked;
    return false;
  }, 30s));
  auto ms = [&](steady::time_point t) { return std::chrono::duration_cast<std::chrono::milliseconds>(t - cut).count(); };
  WARN("eu-west-1 isolated -> its primary refuses direct writes: " << ms(fenced) << " ms; us-east-1 still a replica at "
       << ms(last_seen_replica) << " ms");
  CHECK(fenced < last_seen_replica);
  // The open transaction's session was ended: its write never commits.
  CHECK(open_tx.sqlstate_of("COMMIT") != "");
  pg_connection eu_direct(sandbox::admin_dsn(eu));
  REQUIRE(eu_direct.ok());
  CHECK(eu_direct.scalar("SELECT count(*) FROM itest_failover WHERE region = 'open-tx'") == "0");
  CHECK(eu_direct.scalar("SELECT current_setting('meridian.fenced_epoch', true)") == "6");
  REQUIRE(eventually([] { return sandbox::script_output("ctl us-east-1 status").output.find("epoch 7: primary us-east-1") != std::string::npos; },
                     30s));
  // Healed: the old primary stays fenced (the new epoch fences it too); every region writes to
  // the new primary.
  REQUIRE(sandbox::script("net heal") == 0);
  for (int r : {us, eu, ap}) {
    INFO(region_name(r));
    CHECK(eventually([r] { return write_through(r, 9700 + r) == pg_port_str(us); }, 30s));
  }
  CHECK(eu_direct.sqlstate_of("INSERT INTO itest_failover VALUES (9602, 'direct')") != "");
}
