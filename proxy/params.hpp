#pragma once
// Session parameters as Meridian tracks them: which reported parameters follow the client from
// server connection to server connection, and how a SET that brings a server to them is written.
#include <string>
#include <string_view>
#include <unordered_map>

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

// One thread's parameter sets, interned: clients that start alike (the clients of one
// application do) share one copy, and whether a pooled server connection is in step with a
// client is a pointer comparison at checkout instead of a walk over both maps.
class param_sets {
 public:
  // The set equal to `m`, shared with every other holder of an equal set.
  [[nodiscard]] param_set intern(param_map m);
  // `base` with `name` set to `value`.
  [[nodiscard]] param_set with(const param_set& base, const std::string& name, std::string value);
  // Distinct sets alive.
  [[nodiscard]] std::size_t size();

 private:
  void sweep();
  std::unordered_multimap<std::size_t, std::weak_ptr<const param_map>> sets_;
  std::size_t sweep_at_ = 64;
};

// Splits a startup "options" value (-c name=value, --name=value) into parameters; false on
// anything else, which Meridian cannot apply to a pooled connection.
[[nodiscard]] bool parse_startup_options(std::string_view options, param_map& out);

}  // namespace meridian::proxy
