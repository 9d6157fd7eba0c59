#pragma once
// The single decision point: given what a session is about to start and how this region sees
// the nodes, which node serves it. Everything else (pool checkout, replay, forwarding) follows
// from the answer.
#include <chrono>
#include <optional>
#include <span>
#include <string_view>

#include "routing/classifier.hpp"
#include "routing/topology.hpp"

namespace meridian::routing {

// How a connection's reads may be served (chosen per connection; defaults per user, database).
enum class consistency {
  eventual,          // any replica within its lag limits, else the primary
  read_your_writes,  // as eventual, but only nodes that replayed this client's last commit
  primary,           // everything on the primary
};
// "eventual", "read-your-writes", "primary"; "split" is the older name of eventual.
[[nodiscard]] std::optional<consistency> parse_consistency(std::string_view text);
[[nodiscard]] std::string_view to_string(consistency c);

// What the session is about to run: the combined needs of the statements of its next
// transaction (or implicit transaction) and how the client asked to be routed.
struct route_request {
  target where = target::primary;
  hint forced = hint::none;
  bool split = true;  // false: the client's routing mode sends everything to the primary
  // Read-your-writes: a replica serves only once it has replayed this position (0: no need).
  lsn min_replay;
};

// How this Meridian sees the nodes right now.
struct route_context {
  std::string_view region;
  // Per node (by id): until when it is skipped after refusing connections.
  std::span<const std::chrono::steady_clock::time_point> skipped_until;
  std::chrono::steady_clock::time_point now;
  // Whether this Meridian holds write authority over the topology's epoch now
  // (write_authority.hpp): without it nothing that may write goes to the primary.
  bool may_write = true;
};

struct route_decision {
  std::optional<node_id> node;  // nullopt: no node can serve (no primary known)
  bool replica = false;         // the node is serving as a replica
  // The replica is the best choice but the monitor has not yet seen it replay min_replay: the
  // session confirms on the connection itself (or waits, or goes to the primary).
  bool confirm = false;
  // No node: the request may write and this Meridian has no write authority (its region lost
  // the etcd majority, or a failover is ending the epoch). The session waits for it a short
  // while, then refuses the work.
  bool no_write_authority = false;
};

// Whether the request may be served by a replica at all.
[[nodiscard]] bool wants_replica(const route_request& request);

// Whether the request may write, so that it goes to the primary only under write authority. A
// read sent to the primary (no replica, or the client's routing mode) needs none: it cannot
// make a write that a failover would lose.
[[nodiscard]] bool needs_write_authority(const route_request& request);

// Reads go to the first replica of the topology's read order that may serve reads and was not
// skipped after refusing connections; with none, to the primary. Whatever may write goes to the
// primary only under write authority; a read sent to the primary needs none.
[[nodiscard]] route_decision choose_node(const topology& topo, const route_context& ctx, const route_request& request);

// Merges one statement's needs into the request for the transaction it belongs to.
void add_statement(route_request& request, const classification& c, hint h);

}  // namespace meridian::routing
