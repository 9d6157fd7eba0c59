#include <catch2/catch.hpp>

#include <vector>

#include "routing/router.hpp"

using namespace meridian::routing;
using namespace std::chrono_literals;

namespace {

// us (primary), eu and ap replicas; this Meridian is in eu-west-1.
topology_ptr three_regions() {
  std::vector<node> nodes{
      {{}, "us", "us-east-1", "127.0.0.1", 5432, node_role::primary},
      {{}, "eu", "eu-west-1", "127.0.0.2", 5432, node_role::replica},
      {{}, "ap", "ap-southeast-1", "127.0.0.3", 5432, node_role::replica},
  };
  return make_configured_topology(nodes, "eu-west-1");
}

constexpr node_id us{0};
constexpr node_id eu{1};
constexpr node_id ap{2};

route_request read() { return route_request{target::any, hint::none, true, {}}; }

}  // namespace

TEST_CASE("reads go to this region's replica, writes to the primary", "[routing][router]") {
  auto t = three_regions();
  std::vector<std::chrono::steady_clock::time_point> skipped(3);
  route_context ctx{"eu-west-1", skipped, std::chrono::steady_clock::now()};
  CHECK(t->read_order == std::vector<node_id>{eu, ap});
  auto r = choose_node(*t, ctx, read());
  CHECK(r.node == eu);
  CHECK(r.replica);
  CHECK_FALSE(r.confirm);

  auto w = read();
  w.where = target::primary;
  CHECK(choose_node(*t, ctx, w).node == us);
  CHECK_FALSE(choose_node(*t, ctx, w).replica);

  auto all_primary = read();
  all_primary.split = false;
  CHECK(choose_node(*t, ctx, all_primary).node == us);
  auto forced = all_primary;
  forced.forced = hint::replica;
  CHECK(choose_node(*t, ctx, forced).node == eu);
  auto hinted = read();
  hinted.forced = hint::primary;
  CHECK(choose_node(*t, ctx, hinted).node == us);
}

TEST_CASE("a replica that may not serve reads is passed over for the next, then the primary", "[routing][router]") {
  auto base = three_regions();
  auto t = std::make_shared<topology>(*base);
  std::vector<std::chrono::steady_clock::time_point> skipped(3);
  const auto now = std::chrono::steady_clock::now();
  route_context ctx{"eu-west-1", skipped, now};

  t->states[eu.value].health.readable = false;
  CHECK(choose_node(*t, ctx, read()).node == ap);
  t->states[ap.value].health.readable = false;
  CHECK(choose_node(*t, ctx, read()).node == us);

  // A replica that refused a connection is skipped until its retry time.
  t->states[eu.value].health.readable = true;
  skipped[eu.value] = now + 1s;
  CHECK(choose_node(*t, ctx, read()).node == us);
  ctx.now = now + 2s;
  CHECK(choose_node(*t, ctx, read()).node == eu);

  // A node the topology no longer calls a replica is never read from as one.
  t->states[eu.value].role = node_role::primary;
  t->states[us.value].role = node_role::replica;
  t->states[us.value].health.readable = false;
  CHECK(choose_node(*t, ctx, read()).node == eu);
  CHECK_FALSE(choose_node(*t, ctx, read()).replica);
}

TEST_CASE("in the primary's region, reads stay on the primary rather than cross regions", "[routing][router]") {
  std::vector<node> nodes{
      {{}, "us", "us-east-1", "127.0.0.1", 5432, node_role::primary},
      {{}, "eu", "eu-west-1", "127.0.0.2", 5432, node_role::replica},
  };
  auto t = make_configured_topology(nodes, "us-east-1");
  CHECK(t->read_order == std::vector<node_id>{us, eu});
  std::vector<std::chrono::steady_clock::time_point> skipped(2);
  route_context ctx{"us-east-1", skipped, std::chrono::steady_clock::now()};
  auto d = choose_node(*t, ctx, read());
  CHECK(d.node == us);
  CHECK_FALSE(d.replica);
}

TEST_CASE("in the primary's region, reads go to the nearest replica while the primary is down or was just refused",
          "[routing][router]") {
  std::vector<node> nodes{
      {{}, "us", "us-east-1", "127.0.0.1", 5432, node_role::primary},
      {{}, "eu", "eu-west-1", "127.0.0.2", 5432, node_role::replica},
      {{}, "ap", "ap-southeast-1", "127.0.0.3", 5432, node_role::replica},
  };
  auto configured = make_configured_topology(nodes, "us-east-1");
  topology t = *configured;
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::chrono::steady_clock::time_point> skipped(3);
  route_context ctx{"us-east-1", skipped, now};
  // The monitor found the primary down.
  t.states[us.value].health.probed = true;
  t.states[us.value].health.reachable = false;
  auto d = choose_node(t, ctx, read());
  CHECK(d.node == eu);
  CHECK(d.replica);
  // Writes still go to the primary (there is no other).
  route_request write{target::primary, hint::none, true, {}};
  CHECK(choose_node(t, ctx, write).node == us);
  // No replica may serve reads: the primary, down or not, and the error it brings.
  t.states[eu.value].health.readable = false;
  t.states[ap.value].health.readable = false;
  CHECK(choose_node(t, ctx, read()).node == us);
  // Up again but just refused a connection: skipped for reads a while.
  t.states[us.value].health.reachable = true;
  t.states[ap.value].health.readable = true;
  skipped[us.value] = now + 1s;
  route_context after_refusal{"us-east-1", skipped, now};
  CHECK(choose_node(t, after_refusal, read()).node == ap);
  skipped[us.value] = now - 1ms;
  route_context later{"us-east-1", skipped, now};
  CHECK(choose_node(t, later, read()).node == us);
}

TEST_CASE("read-your-writes: a replica not yet seen at the commit's position must be confirmed", "[routing][router]") {
  auto base = three_regions();
  auto t = std::make_shared<topology>(*base);
  std::vector<std::chrono::steady_clock::time_point> skipped(3);
  route_context ctx{"eu-west-1", skipped, std::chrono::steady_clock::now()};
  t->states[eu.value].health.replay = lsn{1000};
  auto r = read();
  r.min_replay = lsn{1000};
  CHECK_FALSE(choose_node(*t, ctx, r).confirm);
  r.min_replay = lsn{1001};
  auto d = choose_node(*t, ctx, r);
  CHECK(d.node == eu);
  CHECK(d.confirm);
}

TEST_CASE("without write authority, what may write is refused and reads go on", "[routing][router][authority]") {
  auto base = three_regions();
  auto t = std::make_shared<topology>(*base);
  std::vector<std::chrono::steady_clock::time_point> skipped(3);
  route_context ctx{"eu-west-1", skipped, std::chrono::steady_clock::now()};
  ctx.may_write = false;

  auto w = read();
  w.where = target::primary;
  const auto refused = choose_node(*t, ctx, w);
  CHECK_FALSE(refused.node);
  CHECK(refused.no_write_authority);
  // Forced to the primary, or with reads not split: still a write, still refused.
  auto hinted = w;
  hinted.forced = hint::primary;
  CHECK(choose_node(*t, ctx, hinted).no_write_authority);
  auto unsplit = w;
  unsplit.split = false;
  CHECK(choose_node(*t, ctx, unsplit).no_write_authority);

  // Reads: the replica as before.
  auto r = choose_node(*t, ctx, read());
  CHECK(r.node == eu);
  CHECK_FALSE(r.no_write_authority);
  // A read sent to the primary (reads not split, or no replica left) cannot write: served.
  auto all_primary = read();
  all_primary.split = false;
  CHECK(choose_node(*t, ctx, all_primary).node == us);
  t->states[eu.value].health.readable = false;
  t->states[ap.value].health.readable = false;
  const auto fallback = choose_node(*t, ctx, read());
  CHECK(fallback.node == us);
  CHECK_FALSE(fallback.no_write_authority);

  // With authority, the same write goes to the primary.
  ctx.may_write = true;
  CHECK(choose_node(*t, ctx, w).node == us);
}

TEST_CASE("consistency names", "[routing][router]") {
  CHECK(parse_consistency("eventual") == consistency::eventual);
  CHECK(parse_consistency("split") == consistency::eventual);
  CHECK(parse_consistency("read-your-writes") == consistency::read_your_writes);
  CHECK(parse_consistency("primary") == consistency::primary);
  CHECK_FALSE(parse_consistency("strong"));
  CHECK_FALSE(parse_consistency(""));
  CHECK(to_string(consistency::read_your_writes) == "read-your-writes");
}
