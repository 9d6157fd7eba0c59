#pragma once
// A node is an identity (name, region, address) with its routing limits; its role and health
// come from a topology snapshot that is replaced as a whole. Sessions read the snapshot a
// transaction started with.
#include <chrono>
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "routing/lag.hpp"

namespace meridian::routing {

struct node_id {
  std::uint16_t value = 0;
  auto operator<=>(const node_id&) const = default;
};

// Nodes a Meridian knows over its lifetime, removed ones included (their ids stay taken):
// what per-node tables are sized for, so that adding a node never moves them.
constexpr std::size_t max_nodes = 64;

// fenced: a former primary; nothing is routed to it until it rejoins as a replica.
enum class node_role { primary, replica, fenced, unknown };

[[nodiscard]] std::string_view to_string(node_role role);
[[nodiscard]] std::optional<node_role> parse_node_role(std::string_view text);

struct node {
  node_id id;
  std::string name;
  std::string region;
  std::string host;
  std::uint16_t port = 5432;
  node_role configured_role = node_role::unknown;
  // A replica lagging more than this serves no reads (0 bytes: no byte limit).
  std::chrono::milliseconds max_lag{200};
  std::uint64_t max_lag_bytes = 0;
  // Taken out of the configuration by a reload: not probed, never routed to, not shown; the id
  // stays taken (a node added again under the same name gets it back).
  bool removed = false;
};

// What the node monitor last saw of a node, and whether it may serve reads because of it.
struct node_health {
  bool probed = false;     // false until the first probe finished: the node is taken as configured
  bool reachable = true;
  // Unreachable because its host refused the connection: nothing listens on its port (the
  // server is down, not cut off).
  bool refused = false;
  std::chrono::steady_clock::time_point last_seen{};  // the last probe that succeeded
  bool in_recovery = false;
  std::uint32_t timeline = 0;
  std::uint64_t system_id = 0;
  // Fenced by a Meridian whose write authority over this epoch lapsed (0: not so fenced).
  std::uint64_t fenced_epoch = 0;
  lsn wal;      // the primary's current WAL position
  lsn receive;  // a replica's received and replayed positions
  lsn replay;
  std::optional<double> last_replay_epoch;  // pg_last_xact_replay_timestamp(), seconds since 1970
  std::chrono::microseconds probe_latency{0};  // smoothed round trip of the probe query
  std::optional<replica_lag> lag;              // replicas, once the primary's position is known
  // May serve reads: reachable, in recovery, same system and timeline as the primary, within
  // its lag limits (with hysteresis). `problem` says why not.
  bool readable = true;
  std::string problem;
};

struct node_state {
  node_role role = node_role::unknown;  // the role the topology assigns
  node_health health;
};

struct topology {
  std::uint64_t epoch = 0;
  std::vector<node> nodes;         // indexed by node_id.value
  std::vector<node_state> states;  // same index
  // Where this Meridian reads, in order of preference: its own region's replicas, then the
  // primary if it is in this region too (local beats remote), then the other replicas, nearest
  // by measured latency first, the configured order breaking ties. The primary is the last
  // resort in any case.
  std::vector<node_id> read_order;

  [[nodiscard]] const node& at(node_id id) const { return nodes[id.value]; }
  [[nodiscard]] const node_state& state(node_id id) const { return states[id.value]; }
  [[nodiscard]] std::optional<node_id> primary() const;
  [[nodiscard]] std::optional<node_id> find(std::string_view name) const;
};

using topology_ptr = std::shared_ptr<const topology>;

// The initial snapshot: every node in the role it was configured with, taken as healthy, read
// in the order above with the configured order for the other regions.
[[nodiscard]] topology_ptr make_configured_topology(std::vector<node> nodes, std::string_view region);

}  // namespace meridian::routing
