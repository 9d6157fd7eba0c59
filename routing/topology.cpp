#include "routing/topology.hpp"

namespace meridian::routing {

std::string_view to_string(node_role role) {
  switch (role) {
    case node_role::primary: return "primary";
    case node_role::replica: return "replica";
    case node_role::fenced: return "fenced";
    case node_role::unknown: break;
  }
  return "unknown";
}

std::optional<node_role> parse_node_role(std::string_view text) {
  if (text == "primary") return node_role::primary;
  if (text == "replica") return node_role::replica;
  return std::nullopt;
}

std::optional<node_id> topology::primary() const {
  for (const auto& n : nodes)
    if (states[n.id.value].role == node_role::primary) return n.id;
  return std::nullopt;
}

std::optional<node_id> topology::find(std::string_view name) const {
  for (const auto& n : nodes)
    if (n.name == name) return n.id;
  return std::nullopt;
}

topology_ptr make_configured_topology(std::vector<node> nodes, std::string_view region) {
  auto t = std::make_shared<topology>();
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    nodes[i].id = node_id{static_cast<std::uint16_t>(i)};
    t->states.push_back(node_state{nodes[i].removed ? node_role::unknown : nodes[i].configured_role, {}});
  }
  for (const auto& n : nodes)
    if (!n.removed && n.configured_role == node_role::replica && n.region == region) t->read_order.push_back(n.id);
  for (const auto& n : nodes)
    if (!n.removed && n.configured_role == node_role::primary && n.region == region) t->read_order.push_back(n.id);
  for (const auto& n : nodes)
    if (!n.removed && n.configured_role == node_role::replica && n.region != region) t->read_order.push_back(n.id);
  t->nodes = std::move(nodes);
  return t;
}

}  // namespace meridian::routing
