// The data path's meters and how the metrics registry shows them: bucket edges, SQLSTATE
// classes, sums over workers, pool sizes reported as deltas.
#include <catch2/catch.hpp>

#include <vector>

#include "proxy/metrics.hpp"

using namespace meridian::proxy;
using namespace meridian::routing;
using namespace std::chrono_literals;

namespace {

topology_ptr two_nodes() {
  std::vector<node> nodes{
      {{}, "us", "us-east-1", "127.0.0.1", 5432, node_role::primary},
      {{}, "eu", "eu-west-1", "127.0.0.2", 5432, node_role::replica},
  };
  return make_configured_topology(nodes, "eu-west-1");
}

// SHOW STATS's value of one series, "" when it is not there.
std::string value_of(const metrics& m, const std::string& name, const std::string& labels) {
  for (const auto& row : m.rows())
    if (row[0] == name && row[1] == labels) return row[2];
  return "";
}

}  // namespace

TEST_CASE("latencies fall in the first bucket whose bound is not below them", "[proxy][metrics]") {
  latency_histogram h;
  h.observe(300us);    // <= 0.5 ms
  h.observe(500us);    // exactly the bound: still <= 0.5 ms
  h.observe(501us);    // <= 1 ms
  h.observe(400ms);    // <= 0.5 s
  h.observe(20s);      // above every bound
  CHECK(h.count_in(0) == 2);
  CHECK(h.count_in(1) == 1);
  CHECK(h.count_in(9) == 1);
  CHECK(latency_histogram::bounds[9] == 0.5);
  CHECK(h.count_in(latency_histogram::bounds.size()) == 1);
  CHECK(h.sum_ns() == (300us + 500us + 501us + 400ms + 20s).count() * 1000);
}

TEST_CASE("errors are counted by the SQLSTATE's class, malformed codes not at all", "[proxy][metrics]") {
  error_meter e;
  e.count(error_meter::origin::server, "42P01");
  e.count(error_meter::origin::server, "42601");
  e.count(error_meter::origin::meridian, "08P01");
  e.count(error_meter::origin::server, "4");
  e.count(error_meter::origin::server, "a2000");
  e.count(error_meter::origin::server, "");
  std::int64_t total = 0;
  for (std::size_t c = 0; c < error_meter::classes; ++c)
    total += e.get(error_meter::origin::server, c) + e.get(error_meter::origin::meridian, c);
  CHECK(total == 3);
  char name[3];
  CHECK(e.get(error_meter::origin::server, 4 * 36 + 2) == 2);
  CHECK(error_meter::class_name(4 * 36 + 2, name) == "42");
  CHECK(e.get(error_meter::origin::meridian, 0 * 36 + 8) == 1);
  CHECK(error_meter::class_name(35 * 36 + 35, name) == "ZZ");
}

TEST_CASE("the registry sums every worker's meters", "[proxy][metrics]") {
  metrics m(*two_nodes(), 2, "eu-west-1");
  m.worker(0).queries[1].observe(2ms);
  m.worker(1).queries[1].observe(3ms);
  m.worker(1).transactions[0].observe(1s);
  m.worker(0).errors.count(error_meter::origin::server, "40001");
  m.worker(1).errors.count(error_meter::origin::server, "40P01");
  m.worker(0).cache_hits.add(5);
  m.worker(1).cache_misses.add(1);
  m.worker(0).pools[1].idle.add(3);
  m.worker(1).pools[1].idle.add(2);
  m.worker(1).pools[1].waiting.add(1);

  CHECK(value_of(m, "meridian_query_duration_seconds_count", "node=eu") == "2");
  CHECK(value_of(m, "meridian_query_duration_seconds_sum", "node=eu") == "0.005");
  CHECK(value_of(m, "meridian_query_duration_seconds_count", "node=us") == "0");
  CHECK(value_of(m, "meridian_transaction_duration_seconds_count", "node=us") == "1");
  CHECK(value_of(m, "meridian_errors_total", "class=40,origin=server") == "2");
  CHECK(value_of(m, "meridian_errors_total", "class=42,origin=server").empty());  // none: no series
  CHECK(value_of(m, "meridian_classification_cache_lookups_total", "result=hit") == "5");
  CHECK(value_of(m, "meridian_classification_cache_lookups_total", "result=miss") == "1");
  CHECK(value_of(m, "meridian_pool_servers", "node=eu,state=idle") == "5");
  CHECK(value_of(m, "meridian_pool_servers", "node=eu,state=used") == "0");
  CHECK(value_of(m, "meridian_pool_clients_waiting", "node=eu") == "1");
  CHECK(value_of(m, "meridian_info", std::string("region=eu-west-1,version=") + MERIDIAN_VERSION) == "1");
  CHECK(value_of(m, "meridian_node_max_lag_seconds", "node=eu,region=eu-west-1") == "0.2");
}

TEST_CASE("a new epoch naming another primary counts as a primary change", "[proxy][metrics]") {
  auto t = two_nodes();
  metrics m(*t, 1, "eu-west-1");
  auto next = std::make_shared<topology>(*t);
  next->epoch = 1;
  m.node_health(*next);
  CHECK(value_of(m, "meridian_topology_epoch", "") == "1");
  CHECK(value_of(m, "meridian_primary_changes_total", "") == "0");
  // The same epoch again, then a new epoch with the same primary: no change.
  m.node_health(*next);
  next->epoch = 2;
  m.node_health(*next);
  CHECK(value_of(m, "meridian_topology_epoch", "") == "2");
  CHECK(value_of(m, "meridian_primary_changes_total", "") == "0");
  // Epoch 3 makes eu the primary.
  next->epoch = 3;
  next->states[0].role = node_role::fenced;
  next->states[1].role = node_role::primary;
  m.node_health(*next);
  CHECK(value_of(m, "meridian_topology_epoch", "") == "3");
  CHECK(value_of(m, "meridian_primary_changes_total", "") == "1");
}
