#pragma once
// The single decision point: given the session's state and what it is about to run, which node
// serves it. Everything else (pool checkout, replay, forwarding) follows from the answer.
#include <optional>

#include "routing/topology.hpp"

namespace meridian::routing {

// What the session knows when it must pick a server. Grows with read/write splitting.
struct route_request {
  bool in_transaction = false;  // a transaction block is open: it stays where it started
};

struct route_decision {
  std::optional<node_id> node;  // nullopt: no node can serve (no primary known)
};

[[nodiscard]] route_decision choose_node(const topology& topo, const route_request& request);

}  // namespace meridian::routing
