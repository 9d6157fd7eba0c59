// /metrics scraped while pgbench runs through the sandbox's Meridians: the counts match what
// pgbench reports it did, latencies land in their histograms, pools show their connections,
// errors are counted by SQLSTATE class. (Lag when replay is paused: lag_test.cpp.)
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <regex>
#include <thread>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {

std::string scrape(int region) { return http_get(sandbox::metrics_port(region), "/metrics"); }

// A sample's value, 0 when the series does not exist (yet): counters start at 0.
double sample(const std::string& exposition, const std::string& name, const std::string& labels = {}) {
  return std::max(0.0, metric(exposition, name, labels));
}

std::string node_label(int node) { return std::string("node=\"") + region_name(node) + "\""; }

// The buckets of one histogram series must rise with `le` and end at _count.
void check_histogram(const std::string& exposition, const std::string& name, int node) {
  const std::regex bucket(name + "_bucket\\{" + node_label(node) + ",le=\"([^\"]+)\"\\} ([0-9.e+]+)");
  double previous = 0;
  int buckets = 0;
  for (auto it = std::sregex_iterator(exposition.begin(), exposition.end(), bucket); it != std::sregex_iterator(); ++it) {
    const double v = std::stod((*it)[2]);
    CHECK(v >= previous);
    previous = v;
    ++buckets;
  }
  CHECK(buckets == 15);
  CHECK(previous == sample(exposition, name + "_count", node_label(node)));
}

command_result pgbench(int region, const std::string& args) {
  return run_command("PGPASSWORD=app-secret /usr/lib/postgresql/15/bin/pgbench -n -h 127.0.0.1 -p " +
                     std::to_string(sandbox::meridian_port(region)) + " -U app " + args + " app");
}

long long processed(const std::string& pgbench_output) {
  std::smatch m;
  REQUIRE(std::regex_search(pgbench_output, m, std::regex("number of transactions actually processed: ([0-9]+)")));
  return std::stoll(m[1]);
}

}  // namespace

TEST_CASE("a select-only pgbench run shows in eu-west-1's metrics as it ran", "[integration][metrics]") {
  const auto before = scrape(eu);
  REQUIRE_FALSE(before.empty());
  // Scraped while pgbench runs: its 4 clients are connected and reading.
  std::atomic<bool> done{false};
  command_result out;
  std::thread run([&] {
    out = pgbench(eu, "-S -c 4 -j 4 -T 3 -M simple");
    done = true;
  });
  double clients_seen = 0;
  while (!done) {
    clients_seen = std::max(clients_seen, sample(scrape(eu), "meridian_client_connections"));
    std::this_thread::sleep_for(50ms);  // the scrape interval, not a wait for a condition
  }
  run.join();
  INFO(out.output);
  REQUIRE(out.exit_code == 0);
  CHECK(clients_seen >= 4);
  const auto n = static_cast<double>(processed(out.output));
  REQUIRE(n > 100);

  const auto after = scrape(eu);
  auto moved = [&](const std::string& name, const std::string& labels = {}) {
    return sample(after, name, labels) - sample(before, name, labels);
  };
  // pgbench's own set-up adds a statement or two per run (the scale query); nothing else runs.
  constexpr double slack = 10;
  const auto replica = node_label(eu);
  // A read leaves the local replica only while the replica is judged unusable (a probe that
  // timed out on a loaded machine, a refused connection): those are counted where they ran, so
  // the counts add up over all nodes, and the replica serves all but a few of them.
  const auto elsewhere =
      moved("meridian_reads_routed_total", node_label(us)) + moved("meridian_reads_routed_total", node_label(ap));
  INFO("reads routed away from eu-west-1: " << elsewhere << ", replica skips: "
                                            << moved("meridian_replica_skips_total", replica));
  CHECK(elsewhere <= n / 50);
  auto everywhere = [&](const std::string& name, const std::string& labels = {}) {
    const auto with = [&](int node) { return labels.empty() ? node_label(node) : labels + "," + node_label(node); };
    return moved(name, with(us)) + moved(name, with(eu)) + moved(name, with(ap));
  };
  for (const char* name : {"meridian_transaction_duration_seconds_count", "meridian_query_duration_seconds_count"}) {
    INFO(name);
    CHECK(everywhere(name) >= n);
    CHECK(everywhere(name) <= n + slack);
    CHECK(moved(name, replica) >= n - elsewhere);
  }
  CHECK(moved("meridian_transaction_duration_seconds_sum", replica) > 0);
  CHECK(everywhere("meridian_statements_total", "class=\"read\"") >= n);
  CHECK(everywhere("meridian_statements_total", "class=\"read\"") <= n + slack);
  CHECK(moved("meridian_statements_total", "class=\"read\"," + replica) >= n - elsewhere);
  CHECK(moved("meridian_reads_routed_total", replica) + elsewhere >= n);
  // Transaction pooling: a checkout per transaction.
  CHECK(everywhere("meridian_pool_wait_seconds_count") >= n);
  CHECK(everywhere("meridian_pool_wait_seconds_count") <= n + slack);
  // Two statement shapes (the scale query and the select): classified from the cache after
  // the first time on each worker thread.
  const auto hits = moved("meridian_classification_cache_lookups_total", "result=\"hit\"");
  const auto misses = moved("meridian_classification_cache_lookups_total", "result=\"miss\"");
  CHECK(hits + misses >= n);
  CHECK(misses <= slack);
  // Nothing reached the primary's histograms but the reads sent there.
  CHECK(moved("meridian_query_duration_seconds_count", node_label(us)) <= slack + elsewhere);
  check_histogram(after, "meridian_query_duration_seconds", eu);
  check_histogram(after, "meridian_transaction_duration_seconds", eu);
  check_histogram(after, "meridian_pool_wait_seconds", eu);

  // The pool holds the servers it opened, idle once pgbench left.
  CHECK(eventually([&] {
    const auto now = scrape(eu);
    return sample(now, "meridian_pool_servers", replica + ",state=\"used\"") == 0 &&
           sample(now, "meridian_pool_servers", replica + ",state=\"idle\"") >= 1 &&
           sample(now, "meridian_pool_clients_waiting", replica) == 0;
  }, 10s));
  CHECK(sample(after, "meridian_pool_capacity", replica) >= 1);
}

TEST_CASE("TPC-B counts one transaction per pgbench transaction and one query per statement",
          "[integration][metrics]") {
  const auto before = scrape(us);
  auto out = pgbench(us, "-c 2 -j 2 -t 100");
  INFO(out.output);
  REQUIRE(out.exit_code == 0);
  CHECK_THAT(out.output, Catch::Contains("number of failed transactions: 0"));
  const auto after = scrape(us);
  auto moved = [&](const std::string& name) {
    return sample(after, name, node_label(us)) - sample(before, name, node_label(us));
  };
  // BEGIN; 5 statements; END: 7 queries in one transaction, 200 times (plus set-up queries).
  constexpr double slack = 10;
  CHECK(moved("meridian_transaction_duration_seconds_count") >= 200);
  CHECK(moved("meridian_transaction_duration_seconds_count") <= 200 + slack);
  CHECK(moved("meridian_query_duration_seconds_count") >= 1400);
  CHECK(moved("meridian_query_duration_seconds_count") <= 1400 + slack);
  // A transaction takes at least as long as its statements.
  CHECK(moved("meridian_transaction_duration_seconds_sum") >= moved("meridian_query_duration_seconds_sum"));
  check_histogram(after, "meridian_transaction_duration_seconds", us);
}

TEST_CASE("errors are counted by SQLSTATE class and origin", "[integration][metrics]") {
  const auto before = scrape(us);
  {
    pg_connection c(sandbox::dsn(us));
    REQUIRE(c.ok());
    for (int i = 0; i < 3; ++i) CHECK(c.sqlstate_of("SELECT * FROM itest_no_such_table") == "42P01");
    CHECK(c.sqlstate_of("SELECT 1/0") == "22012");
  }
  // An unknown user (its own throttling key): refused by Meridian itself, class 28.
  // sslmode=disable: with "prefer" libpq tries again without TLS after a refusal.
  pg_connection refused(sandbox::dsn(us, "itest_metrics_nobody", "whatever") + " sslmode=disable");
  CHECK_FALSE(refused.ok());
  const auto after = scrape(us);
  auto moved = [&](const std::string& labels) {
    return sample(after, "meridian_errors_total", labels) - sample(before, "meridian_errors_total", labels);
  };
  CHECK(moved("class=\"42\",origin=\"server\"") == 3);
  CHECK(moved("class=\"22\",origin=\"server\"") == 1);
  CHECK(moved("class=\"28\",origin=\"meridian\"") == 1);
  CHECK(moved("class=\"28\",origin=\"server\"") == 0);
}
