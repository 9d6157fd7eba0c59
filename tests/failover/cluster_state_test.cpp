#include <catch2/catch.hpp>

#include "failover/cluster_state.hpp"

using namespace meridian::failover;
using meridian::routing::lsn;
using namespace std::chrono_literals;

namespace {

region_view view(const std::string& region, bool primary_reachable, std::int64_t unreachable_ms = 0,
                 bool refused = false) {
  region_view v;
  v.region = region;
  v.epoch = 1;
  node_view p;
  p.probed = true;
  p.reachable = primary_reachable;
  p.unreachable_ms = primary_reachable ? 0 : unreachable_ms;
  p.refused = !primary_reachable && refused;
  p.wal = lsn{10'000};
  v.nodes["us"] = p;
  for (const char* r : {"eu", "ap"}) {
    node_view n;
    n.probed = n.reachable = n.in_recovery = true;
    n.receive = n.replay = lsn{10'000};
    v.nodes[r] = n;
  }
  return v;
}

}  // namespace

TEST_CASE("records survive their JSON form", "[failover][state]") {
  topology_record t{7, "eu", {"us"}, "us-east-1 lost"};
  CHECK(topology_record::from_json(t.to_json()) == t);
  CHECK_FALSE(topology_record::from_json("{}"));
  CHECK_FALSE(topology_record::from_json("not json"));
  CHECK_FALSE(topology_record::from_json(R"({"epoch": -1, "primary": "x"})"));
  auto v = view("eu-west-1", false, 2500);
  auto back = region_view::from_json(v.to_json());
  REQUIRE(back);
  CHECK(back->region == "eu-west-1");
  CHECK(back->nodes.at("us").unreachable_ms == 2500);
  CHECK_FALSE(back->nodes.at("us").refused);
  CHECK(region_view::from_json(view("eu-west-1", false, 600, true).to_json())->nodes.at("us").refused);
  CHECK(back->nodes.at("eu").replay == lsn{10'000});
}

TEST_CASE("the primary is lost only when a majority of regions lost it long enough", "[failover][state]") {
  std::string why;
  // One region cut off from the primary: no failover.
  CHECK_FALSE(primary_lost({view("us-east-1", true), view("eu-west-1", false, 5000), view("ap-southeast-1", true)}, "us",
                           3, 2s, why));
  // Two of three, but one only for a moment.
  CHECK_FALSE(primary_lost({view("us-east-1", true), view("eu-west-1", false, 5000), view("ap-southeast-1", false, 300)},
                           "us", 3, 2s, why));
  // Two of three for long enough.
  CHECK(primary_lost({view("us-east-1", true), view("eu-west-1", false, 5000), view("ap-southeast-1", false, 2100)}, "us",
                     3, 2s, why));
  CHECK_THAT(why, Catch::Contains("eu-west-1") && Catch::Contains("ap-southeast-1"));
  // Only one region's Meridian is alive: it alone is no majority of three.
  CHECK_FALSE(primary_lost({view("eu-west-1", false, 9000)}, "us", 3, 2s, why));
  // A single instance (one region) decides alone.
  CHECK(primary_lost({view("eu-west-1", false, 9000)}, "us", 1, 2s, why));
}

TEST_CASE("a primary whose port a majority finds refused is lost sooner; a timeout is no such evidence",
          "[failover][state]") {
  std::string why;
  // Refused from two of three for 600 ms: lost at a 500 ms threshold for refusals.
  CHECK(primary_lost({view("us-east-1", false, 600, true), view("eu-west-1", false, 650, true), view("ap-southeast-1", true)},
                     "us", 3, 2s, why, 500ms));
  CHECK_THAT(why, Catch::Contains("refused"));
  // Without the threshold (or with none shorter), the usual detection applies.
  CHECK_FALSE(primary_lost(
      {view("us-east-1", false, 600, true), view("eu-west-1", false, 650, true), view("ap-southeast-1", true)}, "us", 3,
      2s, why));
  // Unreachable without a refusal (a cut link, a timeout) for as long: not yet.
  CHECK_FALSE(primary_lost({view("us-east-1", false, 600), view("eu-west-1", false, 650), view("ap-southeast-1", true)},
                           "us", 3, 2s, why, 500ms));
  // One region refused, another timed out briefly: no majority of evidence.
  CHECK_FALSE(primary_lost(
      {view("us-east-1", false, 600, true), view("eu-west-1", false, 650), view("ap-southeast-1", true)}, "us", 3, 2s,
      why, 500ms));
  // Refused, but for less than the threshold.
  CHECK_FALSE(primary_lost(
      {view("us-east-1", false, 300, true), view("eu-west-1", false, 650, true), view("ap-southeast-1", true)}, "us", 3,
      2s, why, 500ms));
  // A threshold for refusals longer than detection never delays it.
  CHECK(primary_lost({view("us-east-1", false, 2100), view("eu-west-1", false, 2100), view("ap-southeast-1", true)}, "us",
                     3, 2s, why, 5s));
}

TEST_CASE("promotion need not wait out write authority only once every holder released it", "[failover][state]") {
  CHECK(every_holder_released({}, {}));
  CHECK(every_holder_released({"us-east-1/a/1/7"}, {"us-east-1/a/1/7"}));
  CHECK(every_holder_released({"us/1", "eu/2", "ap/3"}, {"ap/3", "us/1", "eu/2"}));
  // One holder missing: a Meridian cut off from etcd may still write until its grant runs out.
  CHECK_FALSE(every_holder_released({"us/1", "eu/2", "ap/3"}, {"us/1", "eu/2"}));
  CHECK_FALSE(every_holder_released({"us/1"}, {}));
  // A release by a Meridian that never registered counts for nobody else.
  CHECK_FALSE(every_holder_released({"us/1", "eu/2"}, {"us/1", "eu/3"}));
}

TEST_CASE("candidate: nearest when caught up, most caught up when it is far ahead, guarded by RPO", "[failover][state]") {
  candidate_settings s;
  s.order = {"eu", "ap"};
  s.prefer_ahead_bytes = 1000;
  const std::vector<std::string> replicas{"eu", "ap"};
  auto views = std::vector<region_view>{view("eu-west-1", false, 5000), view("ap-southeast-1", false, 5000)};
  auto c = choose_candidate(views, replicas, "us", s);
  REQUIRE(c.node);
  CHECK(*c.node == "eu");
  CHECK(c.loss_bytes == 0);

  CHECK(c.diverged.empty());

  // ap is 500 bytes ahead: not enough to pass over eu, which first catches up from ap, so
  // nothing forks and nothing ap received is lost.
  views[1].nodes["ap"].receive = lsn{10'500};
  views[0].nodes["eu"].receive = views[0].nodes["eu"].replay = lsn{10'000};
  c = choose_candidate(views, replicas, "us", s);
  CHECK(*c.node == "eu");
  REQUIRE(c.catch_up_from);
  CHECK(*c.catch_up_from == "ap");
  CHECK(c.catch_up_to == lsn{10'500});
  CHECK(c.position == lsn{10'500});
  CHECK(c.diverged.empty());
  CHECK_THAT(c.reason, Catch::Contains("catches up the 500 bytes it lacks from ap"));
  // Were eu promoted as it is, ap would have received more than it.
  CHECK(ahead_of(views, replicas, "us", "eu") == std::vector<std::string>{"ap"});
  CHECK(ahead_of(views, replicas, "us", "ap").empty());
  // Without that allowance (the default) the most caught up wins: nobody is left ahead.
  auto strict = s;
  strict.prefer_ahead_bytes = 0;
  c = choose_candidate(views, replicas, "us", strict);
  CHECK(*c.node == "ap");
  CHECK_FALSE(c.catch_up_from);
  CHECK(c.diverged.empty());
  // Equals: the order decides.
  views[0].nodes["eu"].receive = lsn{10'500};
  CHECK(*choose_candidate(views, replicas, "us", strict).node == "eu");
  views[0].nodes["eu"].receive = lsn{10'000};
  // eu lags 5000 bytes behind ap: ap is promoted.
  views[0].nodes["eu"].receive = views[0].nodes["eu"].replay = lsn{5'500};
  views[1].nodes["eu"].receive = views[1].nodes["eu"].replay = lsn{5'500};
  c = choose_candidate(views, replicas, "us", s);
  CHECK(*c.node == "ap");
  CHECK_THAT(c.reason, Catch::Contains("ahead"));

  // The primary was seen at 20'000: promoting loses 9'500 bytes, over a 4 KiB guard.
  views[0].nodes["us"].wal = lsn{20'000};
  s.max_loss_bytes = 4096;
  c = choose_candidate(views, replicas, "us", s);
  CHECK(c.blocked);
  CHECK(c.loss_bytes == 9'500);

  // Nobody to promote.
  for (auto& v : views)
    for (auto& [name, n] : v.nodes) n.reachable = false;
  CHECK_FALSE(choose_candidate(views, replicas, "us", s).node);
}

TEST_CASE("candidate: every replica weighed is reported, with the async window", "[failover][state]") {
  candidate_settings s;
  s.order = {"eu", "ap"};
  const std::vector<std::string> replicas{"eu", "ap"};
  auto views = std::vector<region_view>{view("eu-west-1", false, 5000), view("ap-southeast-1", false, 5000)};
  // The primary was last seen at 10'400; eu has 10'300, ap 10'000 (it lags 90 ms, or 70 as
  // the other region measured).
  views[0].nodes["us"].wal = lsn{10'400};
  for (auto& v : views) {
    v.nodes["eu"].receive = lsn{10'300};
    v.nodes["eu"].lag_ms = 15;
    v.nodes["ap"].lag_ms = 90;
  }
  views[1].nodes["ap"].lag_ms = 70;
  views[1].nodes["eu"].lag_ms = 12;
  auto c = choose_candidate(views, replicas, "us", s);
  REQUIRE(c.node);
  CHECK(*c.node == "eu");
  CHECK(c.primary_wal == lsn{10'400});
  CHECK(c.loss_bytes == 100);
  REQUIRE(c.window_ms);
  CHECK(*c.window_ms == 12);
  REQUIRE(c.candidates.size() == 2);
  CHECK(c.candidates[0].node == "eu");
  CHECK(c.candidates[0].rank == 1);
  CHECK(c.candidates[0].position == lsn{10'300});
  CHECK(c.candidates[0].behind_bytes == 100);
  CHECK(c.candidates[1].node == "ap");
  CHECK(c.candidates[1].rank == 2);
  CHECK(c.candidates[1].behind_bytes == 400);
  REQUIRE(c.candidates[1].lag_ms);
  CHECK(*c.candidates[1].lag_ms == 70);
  CHECK(describe(c.candidates) ==
        "eu (rank 1, distance unknown, received " + lsn{10'300}.to_string() + ", 100 bytes behind the primary, lag 12 ms), ap (rank 2, distance unknown, received " +
            lsn{10'000}.to_string() + ", 400 bytes behind the primary, lag 70 ms)");

  // A replica no view sees reachable is not weighed; one a view could not measure has no lag.
  for (auto& v : views) v.nodes["ap"].reachable = false;
  views[0].nodes["eu"].lag_ms.reset();
  views[1].nodes["eu"].lag_ms.reset();
  c = choose_candidate(views, replicas, "us", s);
  REQUIRE(c.candidates.size() == 1);
  CHECK_FALSE(c.window_ms);
  CHECK_THAT(describe(c.candidates), Catch::Contains("lag unknown"));
}

TEST_CASE("candidate: nearest by the round trip measured to the lost primary, the order breaking ties",
          "[failover][state]") {
  candidate_settings s;
  s.order = {"eu", "ap"};
  s.prefer_ahead_bytes = 1000;
  s.regions = {{"us", "us-east-1"}, {"eu", "eu-west-1"}, {"ap", "ap-southeast-1"}};
  const std::vector<std::string> replicas{"eu", "ap"};
  auto views = std::vector<region_view>{view("eu-west-1", false, 5000), view("ap-southeast-1", false, 5000)};
  // Each replica's region last measured the primary before losing it: ap is the nearer.
  views[0].nodes["us"].rtt_us = 220'000;
  views[1].nodes["us"].rtt_us = 80'000;
  auto c = choose_candidate(views, replicas, "us", s);
  REQUIRE(c.node);
  CHECK(*c.node == "ap");
  CHECK_THAT(c.reason, Catch::Contains("ap is the nearest caught-up replica (80.0 ms from the primary)"));
  REQUIRE(c.candidates.size() == 2);
  CHECK(c.candidates[0].node == "ap");
  CHECK(c.candidates[0].rank == 1);
  CHECK(c.candidates[0].distance_us == 80'000);
  CHECK(c.candidates[1].distance_us == 220'000);
  CHECK_THAT(describe(c.candidates), Catch::StartsWith("ap (rank 1, 80.0 ms from the primary, received"));

  // Nearness still yields to data: eu 2000 bytes ahead (over prefer_ahead) wins.
  for (auto& v : views) v.nodes["eu"].receive = lsn{12'000};
  CHECK(*choose_candidate(views, replicas, "us", s).node == "eu");
  // Within prefer_ahead the nearer catches up from it first.
  for (auto& v : views) v.nodes["eu"].receive = lsn{10'500};
  c = choose_candidate(views, replicas, "us", s);
  CHECK(*c.node == "ap");
  CHECK(c.catch_up_from == std::optional<std::string>("eu"));
  for (auto& v : views) v.nodes["eu"].receive = lsn{10'000};

  // About as near (within a fifth): the configured order decides.
  views[0].nodes["us"].rtt_us = 84'000;
  CHECK(*choose_candidate(views, replicas, "us", s).node == "eu");
  views[0].nodes["us"].rtt_us = 220'000;

  // The replica's region has no measurement (its Meridian started after the primary was lost):
  // the primary's region's view of the replica serves, when there is one.
  views[1].nodes["us"].rtt_us.reset();
  CHECK(*choose_candidate(views, replicas, "us", s).node == "eu");  // ap unmeasured: after eu
  auto primary_side = view("us-east-1", true);
  primary_side.nodes["ap"].rtt_us = 81'000;
  primary_side.nodes["eu"].rtt_us = 219'000;
  views.push_back(primary_side);
  c = choose_candidate(views, replicas, "us", s);
  CHECK(*c.node == "ap");
  CHECK(c.candidates[0].distance_us == 81'000);
  CHECK(c.candidates[1].distance_us == 220'000);  // eu's own region's measurement comes first

  // Configured nearness: measurements are reported, the order decides.
  s.measured = false;
  c = choose_candidate(views, replicas, "us", s);
  CHECK(*c.node == "eu");
  CHECK(c.candidates[0].distance_us == 220'000);

  // The round trip survives the view's JSON form; an unmeasured node has none.
  auto back = region_view::from_json(views[0].to_json());
  REQUIRE(back);
  CHECK(back->nodes.at("us").rtt_us == 220'000);
  CHECK_FALSE(back->nodes.at("eu").rtt_us);
}
