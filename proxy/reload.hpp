#pragma once
// Reloading the configuration (SIGHUP, the console's RELOAD): what a new file may change while
// Meridian runs, and what it did change. Pure; the server applies it (main.cpp).
#include <optional>
#include <string>
#include <vector>

#include "proxy/config.hpp"

namespace meridian::proxy {

// Lines `next`'s nodes up with the running configuration's, since a node keeps its id (its
// position in `nodes`) while Meridian runs: a node still listed keeps its position, with its
// new address, limits and TLS settings; a node no longer listed stays in place flagged
// `removed`; a new one comes after them (or gets its old position back, if it was removed
// before). Throws config_error past routing::max_nodes. Call before needs_restart.
void align_nodes(const config& running, config& next);

// The first setting that differs and takes a restart (the listener, threads, the node
// monitor's login, coordination and failover, the metrics and admin endpoints, whether TLS is
// offered), or nullopt when everything that differs can change live: nodes (added, removed,
// moved, their lag limits), pool sizes and timeouts, limits, routing settings, users and their
// secrets, auth, certificate files, log level. `next` must be aligned (align_nodes).
[[nodiscard]] std::optional<std::string> needs_restart(const config& running, const config& next);

// The settings that differ, by name (a user's secret as "users[NAME].password", never its value).
[[nodiscard]] std::vector<std::string> changed_settings(const config& running, const config& next);

}  // namespace meridian::proxy
