#pragma once
// Reloading the configuration (SIGHUP, the console's RELOAD): what a new file may change while
// Meridian runs, and what it did change. Pure; the server applies it (main.cpp).
#include <optional>
#include <string>
#include <vector>

#include "proxy/config.hpp"

namespace meridian::proxy {

// The first setting that differs and takes a restart (the listener, threads, nodes, the node
// monitor, coordination and failover, the metrics and admin endpoints, whether TLS is
// offered), or nullopt when everything that differs can change live: pool sizes and timeouts,
// limits, routing settings, users and their secrets, auth, certificate files, log level.
[[nodiscard]] std::optional<std::string> needs_restart(const config& running, const config& next);

// The settings that differ, by name (a user's secret as "users[NAME].password", never its value).
[[nodiscard]] std::vector<std::string> changed_settings(const config& running, const config& next);

}  // namespace meridian::proxy
