// Write authority on the shared sandbox: the us-east-1 Meridian is cut off from the etcd
// majority (its region's etcd member isolated, the other members out of its reach) while
// PostgreSQL and every other link stay up, so that nothing but the lost quorum explains what
// changes. Its writes must stop being acknowledged within lease_ttl − authority_margin of the
// cut and be refused with 57P03; its reads and the other regions' writes go on; healed, it
// writes again. Every wait polls for its condition within a bound.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {

using steady = std::chrono::steady_clock;

long long ms_since(steady::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - t).count();
}

struct insert_result {
  std::string sqlstate;  // "" when acknowledged
  std::string message;
};

insert_result insert(pg_connection& c, int value, const char* region) {
  PGresult* r = PQexec(c.raw(), ("INSERT INTO itest_authority VALUES (" + std::to_string(value) + ", '" + region + "')").c_str());
  insert_result out;
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    out.sqlstate = code ? code : "?????";
    out.message = PQresultErrorMessage(r);
  }
  PQclear(r);
  return out;
}

}  // namespace

TEST_CASE("a region cut off from the etcd majority stops acknowledging writes, keeps reading, and writes again once healed",
          "[authority]") {
  {
    pg_connection setup(sandbox::dsn(us));
    REQUIRE(setup.ok());
    setup.scalar("CREATE TABLE IF NOT EXISTS itest_authority (v int, region text)");
    setup.scalar("TRUNCATE itest_authority");
  }
  pg_connection us_client(sandbox::dsn(us));
  pg_connection eu_client(sandbox::dsn(eu));
  REQUIRE(us_client.ok());
  REQUIRE(eu_client.ok());
  REQUIRE(eventually([&] { return metric(http_get(sandbox::metrics_port(us), "/metrics"), "meridian_write_authority", "") == 1; }, 30s));
  REQUIRE(insert(us_client, 0, "us-east-1").sqlstate.empty());
  const double lapses_before =
      metric(http_get(sandbox::metrics_port(us), "/metrics"), "meridian_write_authority_lapses_total", "");

  healed_after heal;
  cut_from_etcd_majority("us-east-1", "eu-west-1", "ap-southeast-1");
  const auto cut = steady::now();

  // Writes go on until the authority granted before the cut runs out, then are refused.
  int value = 1;
  long long last_ack_ms = -1;
  insert_result refused;
  REQUIRE(eventually([&] {
    const auto r = insert(us_client, value++, "us-east-1");
    if (r.sqlstate.empty()) {
      last_ack_ms = ms_since(cut);
      return false;
    }
    refused = r;
    return true;
  }, 20s));
  const auto refused_ms = ms_since(cut);
  WARN("cut -> last acknowledged write through us-east-1: " << last_ack_ms << " ms; first refusal: " << refused_ms << " ms");
  INFO(refused.message);
  CHECK(refused.sqlstate == "57P03");
  CHECK_THAT(refused.message, Catch::Contains("may not send writes to the primary"));
  // No write starts past lease_ttl (3 s) − authority_margin (0.5 s) after the cut, for the last
  // renewal the majority confirmed was sent before it; the bound adds the one INSERT's own
  // execution.
  CHECK(last_ack_ms < 2500 + 250);
  // The refusal comes once write_wait (2 s) has passed after the lapse.
  CHECK(refused_ms < 2500 + 2000 + 1500);

  // The Meridian says so.
  const auto exposition = http_get(sandbox::metrics_port(us), "/metrics");
  CHECK(metric(exposition, "meridian_write_authority", "") == 0);
  CHECK(metric(exposition, "meridian_write_authority_lapses_total", "") == lapses_before + 1);
  // Reads through us-east-1 go on (on its primary: a read needs no write authority), and see
  // every acknowledged write.
  CHECK(us_client.scalar("SELECT count(*) FROM itest_authority") == std::to_string(value - 1));
  // A transaction that may write is refused at its start, nothing executed.
  CHECK(us_client.sqlstate_of("BEGIN") == "57P03");
  CHECK(us_client.sqlstate_of("SELECT 1") == "");
  // eu-west-1 still has the majority: its writes go to the same primary. (us-east-1's Meridian
  // fences that primary, its own region's, once its authority has lapsed for authority_margin,
  // until the leader lifts the fence: a write meanwhile gets 25006, nothing else.)
  std::vector<insert_result> fenced;
  int eu_value = 1000;
  CHECK(eventually([&] {
    const auto r = insert(eu_client, eu_value++, "eu-west-1");
    if (!r.sqlstate.empty()) fenced.push_back(r);
    return r.sqlstate.empty();
  }, 15s));
  for (const auto& r : fenced) {
    INFO(r.message);
    CHECK(r.sqlstate == "25006");
  }
  CHECK(metric(http_get(sandbox::metrics_port(eu), "/metrics"), "meridian_write_authority", "") == 1);

  // A Meridian started inside the cut-off region (its pools new, the topology record out of
  // reach) lets clients in and serves reads: start-meridian waits for a SELECT through it.
  // Writes through it are refused.
  REQUIRE(sandbox::script("kill-meridian us-east-1") == 0);
  REQUIRE(sandbox::script("start-meridian us-east-1") == 0);
  pg_connection fresh(sandbox::dsn(us));
  REQUIRE(fresh.ok());
  CHECK(fresh.scalar("SELECT count(*) FROM itest_authority WHERE region = 'us-east-1'") == std::to_string(value - 1));
  CHECK(insert(fresh, 1500, "us-east-1").sqlstate == "57P03");
  CHECK(metric(http_get(sandbox::metrics_port(us), "/metrics"), "meridian_write_authority", "") == 0);

  // Healed: writes through us-east-1 are acknowledged again.
  REQUIRE(sandbox::script("net heal") == 0);
  const auto healed = steady::now();
  REQUIRE(eventually([&] { return insert(fresh, 2000, "us-east-1").sqlstate.empty(); }, 30s));
  WARN("heal -> first acknowledged write through us-east-1: " << ms_since(healed) << " ms");
  CHECK(metric(http_get(sandbox::metrics_port(us), "/metrics"), "meridian_write_authority", "") == 1);
}

TEST_CASE("past its write authority a Meridian commits nothing: a COMMIT is held, then refused and rolled back",
          "[authority]") {
  // eu-west-1's Meridian is cut off from the etcd majority; the primary (us-east-1) stays in
  // its reach and in the majority's, and eu-west-1 has no primary of its own to fence: only
  // the Meridian's own rule stops what its open transactions would commit.
  {
    pg_connection setup(sandbox::dsn(us));
    REQUIRE(setup.ok());
    setup.scalar("CREATE TABLE IF NOT EXISTS itest_authority_commit (v int)");
    setup.scalar("TRUNCATE itest_authority_commit");
  }
  pg_connection committer(sandbox::dsn(eu));
  pg_connection rolled_back(sandbox::dsn(eu));
  REQUIRE(committer.ok());
  REQUIRE(rolled_back.ok());
  REQUIRE(eventually([&] { return metric(http_get(sandbox::metrics_port(eu), "/metrics"), "meridian_write_authority", "") == 1; }, 30s));
  REQUIRE(committer.sqlstate_of("BEGIN") == "");
  REQUIRE(committer.sqlstate_of("INSERT INTO itest_authority_commit VALUES (1)") == "");
  REQUIRE(rolled_back.sqlstate_of("BEGIN") == "");
  REQUIRE(rolled_back.sqlstate_of("INSERT INTO itest_authority_commit VALUES (2)") == "");
  // A session pinned to its primary connection by a temporary table.
  pg_connection pinned(sandbox::dsn(eu));
  REQUIRE(pinned.ok());
  REQUIRE(pinned.sqlstate_of("CREATE TEMP TABLE authority_tt (x int)") == "");

  healed_after heal;
  cut_from_etcd_majority("eu-west-1", "us-east-1", "ap-southeast-1");
  REQUIRE(eventually([] { return metric(http_get(sandbox::metrics_port(eu), "/metrics"), "meridian_write_authority", "") == 0; }, 20s));

  // Inside the block a write still runs: nothing of it is durable before COMMIT.
  CHECK(committer.sqlstate_of("INSERT INTO itest_authority_commit VALUES (3)") == "");
  // The COMMIT waits coordination.write_wait (2 s) for authority, then is refused, and the
  // transaction is over, as after any failed COMMIT.
  const auto asked = steady::now();
  PGresult* r = PQexec(committer.raw(), "COMMIT");
  const auto waited = ms_since(asked);
  const char* code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const std::string sqlstate = code ? code : "";
  const std::string message = PQresultErrorMessage(r);
  PQclear(r);
  INFO(message);
  WARN("a COMMIT past write authority: answered " << sqlstate << " after " << waited << " ms");
  CHECK(sqlstate == "57P03");
  CHECK_THAT(message, Catch::Contains("The transaction was rolled back"));
  CHECK(waited >= 1900);
  CHECK(PQtransactionStatus(committer.raw()) == PQTRANS_IDLE);
  // A ROLLBACK needs no authority.
  CHECK(rolled_back.sqlstate_of("ROLLBACK") == "");
  // Both connections go on: reads are served.
  CHECK(committer.scalar("SELECT 1") == "1");
  CHECK(rolled_back.scalar("SELECT 2") == "2");
  // The pinned session's autocommit write on the connection it holds is refused too, nothing
  // begun on the server, and its state is kept.
  CHECK(pinned.sqlstate_of("INSERT INTO itest_authority_commit VALUES (5)") == "57P03");
  CHECK(pinned.scalar("SELECT count(*) FROM authority_tt") == "0");
  // Nothing of either transaction reached the table.
  {
    pg_connection primary(sandbox::admin_dsn(us));
    REQUIRE(primary.ok());
    CHECK(primary.scalar("SELECT count(*) FROM itest_authority_commit") == "0");
  }

  // Healed: the same connection commits again.
  REQUIRE(sandbox::script("net heal") == 0);
  REQUIRE(eventually([] { return metric(http_get(sandbox::metrics_port(eu), "/metrics"), "meridian_write_authority", "") == 1; }, 30s));
  REQUIRE(committer.sqlstate_of("BEGIN") == "");
  REQUIRE(committer.sqlstate_of("INSERT INTO itest_authority_commit VALUES (4)") == "");
  CHECK(committer.sqlstate_of("COMMIT") == "");
  pg_connection primary(sandbox::admin_dsn(us));
  REQUIRE(primary.ok());
  CHECK(primary.scalar("SELECT array_agg(v)::text FROM itest_authority_commit") == "{4}");
}
