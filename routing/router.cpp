#include "routing/router.hpp"

namespace meridian::routing {

namespace {
bool usable_replica(const topology& topo, const route_context& ctx, const node& n) {
  if (topo.state(n.id).role != node_role::replica || !topo.state(n.id).reachable) return false;
  return n.id.value >= ctx.skipped_until.size() || ctx.skipped_until[n.id.value] <= ctx.now;
}
}  // namespace

route_decision choose_node(const topology& topo, const route_context& ctx, const route_request& request) {
  const bool wants_replica =
      request.forced == hint::replica || (request.split && request.forced != hint::primary && request.where == target::any);
  if (wants_replica) {
    // The replica in this region first. Choosing among other regions by measured latency and
    // lag comes with the node monitor; until then reads fall back to the primary.
    for (const auto& n : topo.nodes)
      if (n.region == ctx.region && usable_replica(topo, ctx, n)) return route_decision{n.id, true};
  }
  return route_decision{topo.primary(), false};
}

void add_statement(route_request& request, const classification& c, hint h) {
  if (h != hint::none) request.forced = h;
  // A read-write transaction, a write, or state that pins the session: the primary.
  if (c.where == target::primary || c.tx == tx_effect::begin || c.pins_session) request.where = target::primary;
}

}  // namespace meridian::routing
