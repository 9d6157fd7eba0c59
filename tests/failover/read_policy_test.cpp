#include <catch2/catch.hpp>

#include "failover/read_policy.hpp"

using namespace meridian::routing;
using meridian::failover::latency_bucket;
using meridian::failover::read_policy;
using meridian::failover::read_policy_settings;
using namespace std::chrono_literals;

namespace {

constexpr node_id us{0};
constexpr node_id eu{1};
constexpr node_id ap{2};
constexpr node_id eu2{3};

// A primary and three replicas, all probed healthy, seen from `region`.
topology healthy(const std::string& region = "eu-west-1") {
  std::vector<node> nodes{
      {{}, "us", "us-east-1", "h", 5432, node_role::primary, 200ms, 0},
      {{}, "eu", "eu-west-1", "h", 5432, node_role::replica, 100ms, 0},
      {{}, "ap", "ap-southeast-1", "h", 5432, node_role::replica, 200ms, 0},
      {{}, "eu2", "eu-west-1", "h", 5432, node_role::replica, 100ms, 1u << 20},
  };
  topology t = *make_configured_topology(nodes, region);
  for (auto& s : t.states) {
    s.health.probed = true;
    s.health.reachable = true;
    s.health.in_recovery = s.role == node_role::replica;
    s.health.system_id = 42;
    s.health.timeline = 1;
    if (s.health.in_recovery) s.health.lag = replica_lag{0, 0ms, 0ms, true};
  }
  return t;
}

read_policy policy(const std::string& region = "eu-west-1") {
  read_policy_settings s;
  s.region = region;
  return read_policy(s);
}

bool readable(const topology& t, node_id n) { return t.state(n).health.readable; }

}  // namespace

TEST_CASE("healthy replicas serve reads; the primary is never one of them", "[failover][policy]") {
  auto t = healthy();
  auto p = policy();
  p.apply(t);
  CHECK(readable(t, eu));
  CHECK(readable(t, ap));
  CHECK(readable(t, eu2));
  CHECK_FALSE(readable(t, us));
  CHECK(t.read_order.size() == 3);
}

TEST_CASE("unreachable, promoted, foreign or old-timeline replicas serve no reads", "[failover][policy]") {
  auto p = policy();
  SECTION("unreachable") {
    auto t = healthy();
    t.states[eu.value].health.reachable = false;
    t.states[eu.value].health.problem = "unreachable: connection refused";
    p.apply(t);
    CHECK_FALSE(readable(t, eu));
    CHECK(t.state(eu).health.problem == "unreachable: connection refused");
  }
  SECTION("not probed yet") {
    auto t = healthy();
    t.states[eu.value].health.probed = false;
    p.apply(t);
    CHECK_FALSE(readable(t, eu));
  }
  SECTION("promoted behind Meridian's back") {
    auto t = healthy();
    t.states[ap.value].health.in_recovery = false;
    p.apply(t);
    CHECK_FALSE(readable(t, ap));
    CHECK_THAT(t.state(ap).health.problem, Catch::Contains("not in recovery"));
  }
  SECTION("another cluster") {
    auto t = healthy();
    t.states[ap.value].health.system_id = 7;
    p.apply(t);
    CHECK_FALSE(readable(t, ap));
    CHECK_THAT(t.state(ap).health.problem, Catch::Contains("system identifier"));
  }
  SECTION("left on an old timeline") {
    auto t = healthy();
    t.states[us.value].health.timeline = 2;
    t.states[eu2.value].health.timeline = 2;
    p.apply(t);
    CHECK_FALSE(readable(t, eu));
    CHECK_THAT(t.state(eu).health.problem, Catch::Contains("timeline 1"));
    CHECK(readable(t, eu2));
  }
}

TEST_CASE("lag limits in time and bytes, with hysteresis", "[failover][policy]") {
  auto t = healthy();
  auto p = policy();
  auto lag = [&](node_id n, std::chrono::milliseconds time, std::uint64_t bytes = 0) {
    t.states[n.value].health.lag = replica_lag{bytes, time, time, true};
    p.apply(t);
    return readable(t, n);
  };
  CHECK(lag(eu, 90ms));
  CHECK_FALSE(lag(eu, 101ms));  // over its 100 ms limit
  CHECK_THAT(t.state(eu).health.problem, Catch::Contains("over its limit 100 ms"));
  CHECK_FALSE(lag(eu, 90ms));   // back under the limit, but not under half of it
  CHECK_FALSE(lag(eu, 51ms));
  CHECK(lag(eu, 50ms));         // readmitted
  CHECK(lag(eu, 99ms));         // and stays in until the limit is passed again
  CHECK(lag(ap, 150ms));        // ap's limit is 200 ms
  CHECK_FALSE(lag(ap, 250ms));
  CHECK(lag(eu2, 10ms, 1u << 19));
  CHECK_FALSE(lag(eu2, 10ms, (1u << 20) + 1));  // over its byte limit
  CHECK(lag(eu2, 10ms, 1u << 18));
  // Unknown lag (the primary's position not seen yet) cannot be judged: the replica serves.
  t.states[ap.value].health.lag.reset();
  p.apply(t);
  CHECK(readable(t, ap));
}

TEST_CASE("a lag limit is judged on the lag a replica certainly has, not on the estimate", "[failover][policy]") {
  auto t = healthy();
  auto p = policy();
  auto lag = [&](node_id n, std::chrono::milliseconds estimate, std::chrono::milliseconds at_least) {
    t.states[n.value].health.lag = replica_lag{4096, estimate, at_least, true};
    p.apply(t);
    return readable(t, n);
  };
  // A write after an idle spell: the estimate is a whole sampling interval (250 ms), the replica
  // 3 ms behind. It keeps serving reads.
  CHECK(lag(eu, 250ms, 3ms));
  // Certainly past its 100 ms limit: excluded, and the message gives both numbers.
  CHECK_FALSE(lag(eu, 300ms, 120ms));
  CHECK_THAT(t.state(eu).health.problem, Catch::Contains("lag at least 120 ms (about 300 ms)"));
  // Readmitted once what it certainly lags is under half its limit.
  CHECK_FALSE(lag(eu, 200ms, 60ms));
  CHECK(lag(eu, 200ms, 40ms));
}

TEST_CASE("read order: own region first, then nearest, configured order breaking ties", "[failover][policy]") {
  SECTION("own region first, in configured order") {
    auto t = healthy("eu-west-1");
    auto p = policy("eu-west-1");
    p.apply(t);
    CHECK(t.read_order == std::vector<node_id>{eu, eu2, ap});
  }
  SECTION("elsewhere by measured latency") {
    auto t = healthy("sa-east-1");
    t.states[eu.value].health.probe_latency = 80ms;
    t.states[eu2.value].health.probe_latency = 82ms;  // same bucket as eu
    t.states[ap.value].health.probe_latency = 40ms;
    auto p = policy("sa-east-1");
    p.apply(t);
    CHECK(t.read_order == std::vector<node_id>{ap, eu, eu2});
  }
  SECTION("a configured preference breaks ties") {
    auto t = healthy("sa-east-1");
    for (auto n : {eu, ap, eu2}) t.states[n.value].health.probe_latency = 300us;
    read_policy_settings s;
    s.region = "sa-east-1";
    s.preference = {ap, eu2};
    read_policy p(s);
    p.apply(t);
    CHECK(t.read_order == std::vector<node_id>{ap, eu2, eu});
  }
  SECTION("the primary's region reads from the primary before going abroad") {
    auto t = healthy("us-east-1");
    auto p = policy("us-east-1");
    p.apply(t);
    CHECK(t.read_order == std::vector<node_id>{us, eu, ap, eu2});
  }
  CHECK(latency_bucket(300us) == 0);
  CHECK(latency_bucket(999us) == 0);
  CHECK(latency_bucket(1ms) == 1);
  CHECK(latency_bucket(80ms) == latency_bucket(82ms));
  CHECK(latency_bucket(40ms) < latency_bucket(80ms));
}
