#pragma once
// A node is an identity (name, region, address); its role and health come from a topology
// snapshot that is replaced as a whole. Sessions read the snapshot a transaction started with.
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meridian::routing {

struct node_id {
  std::uint16_t value = 0;
  auto operator<=>(const node_id&) const = default;
};

enum class node_role { primary, replica, unknown };

[[nodiscard]] std::string_view to_string(node_role role);
[[nodiscard]] std::optional<node_role> parse_node_role(std::string_view text);

struct node {
  node_id id;
  std::string name;
  std::string region;
  std::string host;
  std::uint16_t port = 5432;
  node_role configured_role = node_role::unknown;
};

struct node_state {
  node_role role = node_role::unknown;
  bool reachable = true;
};

struct topology {
  std::uint64_t epoch = 0;
  std::vector<node> nodes;         // indexed by node_id.value
  std::vector<node_state> states;  // same index

  [[nodiscard]] const node& at(node_id id) const { return nodes[id.value]; }
  [[nodiscard]] const node_state& state(node_id id) const { return states[id.value]; }
  [[nodiscard]] std::optional<node_id> primary() const;
  [[nodiscard]] std::optional<node_id> find(std::string_view name) const;
};

using topology_ptr = std::shared_ptr<const topology>;

// The initial snapshot: every node in the role it was configured with.
[[nodiscard]] topology_ptr make_configured_topology(std::vector<node> nodes);

}  // namespace meridian::routing
