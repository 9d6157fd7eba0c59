#pragma once
// Session parameters as Meridian tracks them: which reported parameters follow the client from
// server connection to server connection, and how a SET that brings a server to them is written.
#include <string>
#include <string_view>

#include "proxy/server_connection.hpp"

namespace meridian::proxy {

[[nodiscard]] std::string lower(std::string_view s);
// Reported parameters a client may change with SET; Meridian replays them on every server.
[[nodiscard]] bool is_tracked_parameter(std::string_view lower_name);
// Reported parameters that change only with state Meridian cannot move (SET SESSION AUTHORIZATION).
[[nodiscard]] bool is_tainting_parameter(std::string_view lower_name);
// The spelling PostgreSQL reports a parameter with (DateStyle, TimeZone, …).
[[nodiscard]] std::string_view canonical_parameter_name(std::string_view lower_name);
[[nodiscard]] bool is_valid_parameter_name(std::string_view name);
[[nodiscard]] std::string quote_literal(std::string_view value);

// The SET/RESET statements that bring a server connection from `current` to `wanted`.
[[nodiscard]] std::string parameter_sync_sql(const param_map& wanted, const param_map& current,
                                             const param_map& baseline);

// Splits a startup "options" value (-c name=value, --name=value) into parameters; false on
// anything else, which Meridian cannot apply to a pooled connection.
[[nodiscard]] bool parse_startup_options(std::string_view options, param_map& out);

}  // namespace meridian::proxy
