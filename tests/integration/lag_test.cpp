// Replication lag as Meridian measures it, routing on it, and read-your-writes consistency, on
// the real sandbox: replay on the eu-west-1 replica is paused and resumed with PostgreSQL's own
// pg_wal_replay_pause() while the primary writes.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {


double counter(int seen_from, const std::string& name, const std::string& labels) {
  return metric(http_get(sandbox::metrics_port(seen_from), "/metrics"), name, labels);
}


// Replay paused on a replica for the guard's lifetime (resumed however the test ends).
class replay_paused {
 public:
  explicit replay_paused(int region) : admin_(sandbox::admin_dsn(region)) {
    REQUIRE(admin_.ok());
    admin_.scalar("SELECT pg_wal_replay_pause()");
  }
  ~replay_paused() { resume(); }
  void resume() {
    if (!resumed_) admin_.scalar("SELECT pg_wal_replay_resume()");
    resumed_ = true;
  }

 private:
  pg_connection admin_;
  bool resumed_ = false;
};

// Writes a row on the primary every few milliseconds until destroyed: a primary that is busy.
class background_writer {
 public:
  background_writer() {
    pg_connection c(sandbox::admin_dsn(us) + " dbname=app");
    REQUIRE(c.ok());
    c.scalar("CREATE TABLE IF NOT EXISTS itest_lag_writes (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())");
    thread_ = std::thread([this] {
      pg_connection w(sandbox::admin_dsn(us) + " dbname=app");
      while (!stop_) {
        w.sqlstate_of("INSERT INTO itest_lag_writes DEFAULT VALUES");
        std::this_thread::sleep_for(5ms);  // the pace of the workload, not a wait for a condition
      }
    });
  }
  ~background_writer() {
    stop_ = true;
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

bool replica_readable(int seen_from, int node) { return node_gauge(seen_from, "meridian_node_readable", node) == 1; }

}  // namespace

TEST_CASE("with an idle primary every replica lags 0 and stays at 0", "[integration][lag]") {
  for (int node : {eu, ap}) {
    INFO(region_name(node));
    REQUIRE(eventually([&] { return node_gauge(eu, "meridian_node_lag_seconds", node) == 0 &&
                                    node_gauge(eu, "meridian_node_lag_bytes", node) == 0; }, 30s));
  }
  // Two seconds later it still reads 0: nothing was written, so nothing is missing on the
  // replicas (now() - pg_last_xact_replay_timestamp() would have grown by two seconds).
  pg_connection replica(sandbox::admin_dsn(eu));
  REQUIRE(replica.ok());
  std::this_thread::sleep_for(2s);  // the idle time itself is what is tested
  for (int node : {eu, ap}) {
    INFO(region_name(node));
    CHECK(node_gauge(eu, "meridian_node_lag_seconds", node) == 0);
    CHECK(node_gauge(eu, "meridian_node_readable", node) == 1);
  }
  CHECK(node_gauge(eu, "meridian_node_up", us) == 1);
  CHECK(node_gauge(eu, "meridian_node_primary", us) == 1);
  CHECK(node_gauge(eu, "meridian_node_primary", eu) == 0);
  CHECK(node_gauge(eu, "meridian_node_timeline", eu) >= 1);
  CHECK(node_gauge(eu, "meridian_node_probe_latency_seconds", eu) > 0);
}

TEST_CASE("a replica whose replay is paused lags more and more and reads move away until it resumes",
          "[integration][lag]") {
  pg_connection reader(sandbox::dsn(eu));
  REQUIRE(reader.ok());
  REQUIRE(eventually([&] { return replica_readable(eu, eu); }, 30s));
  REQUIRE(*reader.scalar("SELECT inet_server_port()") == pg_port_str(eu));
  const auto reads_on_ap = counter(eu, "meridian_reads_routed_total", "node=\"ap-southeast-1\"");
  {
    background_writer writes;
    replay_paused paused(eu);
    // Past its 100 ms limit: no more reads for the eu replica.
    REQUIRE(eventually([&] { return !replica_readable(eu, eu); }, 30s));
    const double first = node_gauge(eu, "meridian_node_lag_seconds", eu);
    CHECK(first > 0.1);
    CHECK(node_gauge(eu, "meridian_node_lag_bytes", eu) > 0);
    // And it keeps growing while replay stays paused.
    CHECK(eventually([&] { return node_gauge(eu, "meridian_node_lag_seconds", eu) > first + 0.5; }, 30s));
    // Reads go to the nearest replica within its limits: ap-southeast-1.
    for (int i = 0; i < 20; ++i) CHECK(*reader.scalar("SELECT inet_server_port()") == pg_port_str(ap));
    CHECK(counter(eu, "meridian_reads_routed_total", "node=\"ap-southeast-1\"") >= reads_on_ap + 20);
    // The other regions see it too (the us-east-1 Meridian has no replica of its own).
    CHECK(eventually([&] { return !replica_readable(us, eu); }, 10s));
    paused.resume();
    CHECK(eventually([&] { return replica_readable(eu, eu); }, 30s));
  }
  CHECK(eventually([&] { return *reader.scalar("SELECT inet_server_port()") == pg_port_str(eu); }, 10s));
  CHECK(node_gauge(eu, "meridian_node_lag_seconds", eu) < 0.1);
}

namespace {

// Writes a value and reads it straight back `iterations` times through the eu-west-1
// Meridian while replay on the eu replica is paused and resumed every few milliseconds.
struct read_back_result {
  int stale = 0;
  int on_replica = 0;
};

read_back_result write_then_read(const std::string& consistency, int iterations) {
  {
    pg_connection setup(sandbox::dsn(us));
    REQUIRE(setup.ok());
    setup.scalar("CREATE TABLE IF NOT EXISTS itest_ryw (id int PRIMARY KEY, v bigint)");
    setup.scalar("INSERT INTO itest_ryw VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET v = 0");
  }
  pg_connection c(sandbox::dsn(eu) + " options='-c meridian.consistency=" + consistency + "'");
  REQUIRE(c.ok());
  REQUIRE(c.scalar("SHOW meridian.consistency") == consistency);
  REQUIRE(eventually([&] { return c.scalar("SELECT v FROM itest_ryw WHERE id = 1") == "0"; }, 10s));

  std::atomic<bool> stop{false};
  std::thread stutter([&] {
    pg_connection admin(sandbox::admin_dsn(eu));
    while (!stop) {
      admin.scalar("SELECT pg_wal_replay_pause()");
      std::this_thread::sleep_for(3ms);  // how long replication stays delayed: the workload's shape
      admin.scalar("SELECT pg_wal_replay_resume()");
      std::this_thread::sleep_for(3ms);
    }
    admin.scalar("SELECT pg_wal_replay_resume()");
  });
  read_back_result out;
  const std::string replica_port = pg_port_str(eu);
  for (int i = 1; i <= iterations; ++i) {
    const auto value = std::to_string(i);
    c.scalar("UPDATE itest_ryw SET v = " + value + " WHERE id = 1");
    PGresult* r = PQexec(c.raw(), "SELECT v, inet_server_port() FROM itest_ryw WHERE id = 1");
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
    if (std::string(PQgetvalue(r, 0, 0)) != value) ++out.stale;
    if (std::string(PQgetvalue(r, 0, 1)) == replica_port) ++out.on_replica;
    PQclear(r);
  }
  stop = true;
  stutter.join();
  return out;
}

}  // namespace

TEST_CASE("read-your-writes reads back every write at once and none stale while replication stutters",
          "[integration][lag][consistency]") {
  const auto waited = counter(eu, "meridian_read_your_writes_waits_total", "outcome=\"replica\"");
  auto ryw = write_then_read("read-your-writes", 5000);
  INFO("stale reads " << ryw.stale << ", reads on the eu replica " << ryw.on_replica);
  CHECK(ryw.stale == 0);
  // The reads were not simply all sent to the primary: most waited for the local replica.
  CHECK(ryw.on_replica >= 2500);
  CHECK(counter(eu, "meridian_read_your_writes_waits_total", "outcome=\"replica\"") > waited);

  // The same loop with eventual consistency reads stale values: the test can fail.
  auto eventual = write_then_read("eventual", 5000);
  INFO("eventual: stale reads " << eventual.stale << ", reads on the eu replica " << eventual.on_replica);
  CHECK(eventual.stale > 0);
}

TEST_CASE("consistency is chosen per connection with SET meridian.consistency", "[integration][lag][consistency]") {
  pg_connection c(sandbox::dsn(eu));
  REQUIRE(c.ok());
  CHECK(c.scalar("SHOW meridian.consistency") == "eventual");
  CHECK(c.sqlstate_of("SET meridian.consistency = 'strong'") == "22023");
  CHECK(c.sqlstate_of("SET meridian.consistancy = 'primary'") == "42704");
  CHECK(c.scalar("SHOW meridian.consistency") == "eventual");
  // A SET rolled back changes nothing; one committed applies from the next transaction.
  c.scalar("BEGIN");
  c.scalar("SET meridian.consistency = 'primary'");
  c.scalar("ROLLBACK");
  CHECK(c.scalar("SELECT inet_server_port()") == pg_port_str(eu));
  c.scalar("SET meridian.consistency = 'primary'");
  CHECK(c.scalar("SHOW meridian.consistency") == "primary");
  for (int i = 0; i < 5; ++i) CHECK(c.scalar("SELECT inet_server_port()") == pg_port_str(us));
  c.scalar("RESET meridian.consistency");
  CHECK(c.scalar("SHOW meridian.consistency") == "eventual");
  CHECK(c.scalar("SELECT inet_server_port()") == pg_port_str(eu));
  // Through the extended protocol too.
  PGresult* r = PQexecParams(c.raw(), "SET meridian.consistency = 'sometimes'", 0, nullptr, nullptr, nullptr, nullptr, 0);
  CHECK(std::string(PQresultErrorField(r, PG_DIAG_SQLSTATE) ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : "") == "22023");
  PQclear(r);
  CHECK(c.scalar("SELECT 1") == "1");

  pg_connection bad(sandbox::dsn(eu) + " options='-c meridian.consistency=sometimes'");
  CHECK_FALSE(bad.ok());
  CHECK_THAT(bad.error(), Catch::Contains("meridian.consistency"));
}

TEST_CASE("a replica promoted behind Meridian's back is no longer read from", "[integration][lag]") {
  pg_connection reader(sandbox::dsn(ap));
  REQUIRE(reader.ok());
  REQUIRE(eventually([&] { return replica_readable(ap, ap); }, 30s));
  REQUIRE(*reader.scalar("SELECT inet_server_port()") == pg_port_str(ap));
  {
    pg_connection admin(sandbox::admin_dsn(ap));
    REQUIRE(admin.ok());
    REQUIRE(admin.scalar("SELECT pg_promote()") == "t");
  }
  CHECK(eventually([&] { return node_gauge(ap, "meridian_node_primary", ap) == 1; }, 30s));
  CHECK(eventually([&] { return !replica_readable(ap, ap); }, 10s));
  // Reads through ap-southeast-1 now go to the eu replica; writes still to the real primary.
  for (int i = 0; i < 10; ++i) CHECK(*reader.scalar("SELECT inet_server_port()") == pg_port_str(eu));
  CHECK(*reader.scalar("SELECT inet_server_port() FROM (SELECT txid_current()) t") == pg_port_str(us));
  // Every region stops reading from it.
  CHECK(eventually([&] { return !replica_readable(eu, ap); }, 10s));

  // Made a replica again for the tests that follow.
  REQUIRE(sandbox::script("rebuild-node ap-southeast-1") == 0);
  CHECK(eventually([&] { return replica_readable(ap, ap); }, 60s));
  CHECK(eventually([&] { return *reader.scalar("SELECT inet_server_port()") == pg_port_str(ap); }, 10s));
}
