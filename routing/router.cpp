#include "routing/router.hpp"

namespace meridian::routing {

std::optional<consistency> parse_consistency(std::string_view text) {
  if (text == "eventual" || text == "split") return consistency::eventual;
  if (text == "read-your-writes") return consistency::read_your_writes;
  if (text == "primary") return consistency::primary;
  return std::nullopt;
}

std::string_view to_string(consistency c) {
  switch (c) {
    case consistency::eventual: return "eventual";
    case consistency::read_your_writes: return "read-your-writes";
    case consistency::primary: break;
  }
  return "primary";
}

namespace {
bool skipped(const route_context& ctx, node_id id) {
  return id.value < ctx.skipped_until.size() && ctx.skipped_until[id.value] > ctx.now;
}

bool usable_replica(const topology& topo, const route_context& ctx, node_id id) {
  const auto& s = topo.state(id);
  if (s.role != node_role::replica || !s.health.readable) return false;
  return !skipped(ctx, id);
}

// The local primary can serve a read unless the monitor found it down or a connection to it
// just failed.
bool primary_serves_reads(const topology& topo, const route_context& ctx, node_id id) {
  const auto& h = topo.state(id).health;
  return (!h.probed || h.reachable) && !skipped(ctx, id);
}
}  // namespace

bool wants_replica(const route_request& request) {
  return request.forced == hint::replica ||
         (request.split && request.forced != hint::primary && request.where == target::any);
}

bool needs_write_authority(const route_request& request) { return request.where == target::primary; }

route_decision choose_node(const topology& topo, const route_context& ctx, const route_request& request) {
  if (wants_replica(request)) {
    for (auto id : topo.read_order) {
      // The local primary: reads stay in the region, unless it is down; then the nearest
      // replica that may serve them.
      if (topo.state(id).role == node_role::primary) {
        if (primary_serves_reads(topo, ctx, id)) break;
        continue;
      }
      if (!usable_replica(topo, ctx, id)) continue;
      return route_decision{id, true, topo.state(id).health.replay < request.min_replay};
    }
  }
  if (!ctx.may_write && needs_write_authority(request)) return route_decision{std::nullopt, false, false, true};
  return route_decision{topo.primary(), false, false};
}

void add_statement(route_request& request, const classification& c, hint h) {
  if (h != hint::none) request.forced = h;
  // A read-write transaction, a write, or state that pins the session: the primary.
  if (c.where == target::primary || c.tx == tx_effect::begin || c.pins_session) request.where = target::primary;
}

}  // namespace meridian::routing
