#pragma once
// What the parts of the client session share. `session` is one class whose member functions are
// split by responsibility over proxy/session*.cpp: session.cpp (its life, the client's turn,
// cancel and shutdown), session_login.cpp (start-up, TLS, authentication, admission),
// session_statements.cpp (client messages to the server: statements, prepared statements,
// session parameters), session_consistency.cpp (read-your-writes), session_checkout.cpp (a
// server connection for each unit, and write authority), session_relay.cpp (the server's
// answers to the client) and session_client_writer.cpp. Only those files include this.
#include <cctype>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/backend.hpp"
#include "protocol/message_types.hpp"
#include "protocol/error.hpp"
#include "routing/router.hpp"

namespace meridian::proxy::session_parts {

namespace pr = meridian::protocol;
namespace fe_t = pr::frontend_type;
namespace be_t = pr::backend_type;
using clock = std::chrono::steady_clock;

// Tags the Sync the session core sends to close a replica's batch before it moves.
constexpr std::uint32_t core_sync_tag = 0xfffffffeu;
// Tags the synthetic query that reads the WAL position after a write (SHOW tags count from 0).
constexpr std::uint32_t position_tag = 0xffffffffu;
// Tags a client's simple Query that runs RESET ALL or DISCARD ALL: the parameters it reports
// are the client's start-up values, not the server's defaults.
constexpr std::uint32_t reset_all_tag = 0xfffffffdu;
// Tags the synthetic query that brings a connection back to the client's start-up parameters
// after its RESET ALL or DISCARD ALL.
constexpr std::uint32_t restore_tag = 0xfffffffcu;
// Tags the Parse sent in place of a client's Parse under a name it already uses: it fails on the
// server, whose error is replaced with PostgreSQL's 42P05.
constexpr std::uint32_t duplicate_parse_tag = 0xfffffffbu;

inline void append_ready(std::string& out, pr::tx_status status) {
  pr::be::serialize(pr::be::ready_for_query{status}, out);
}

// Meridian's own settings, given at start-up or with SET: the error a bad one gets, if any.
struct setting_error {
  std::string_view sqlstate;
  std::string message;
};
inline std::optional<setting_error> check_meridian_setting(const std::string& name, const std::optional<std::string>& value) {
  if (name != "meridian.consistency" && name != "meridian.routing")
    return setting_error{pr::sqlstate::undefined_object, "unrecognized configuration parameter \"" + name + "\""};
  if (!value || value->empty()) return std::nullopt;  // RESET, SET … TO DEFAULT
  const bool ok = name == "meridian.routing" ? (*value == "split" || *value == "primary")
                                             : routing::parse_consistency(*value).has_value();
  if (ok) return std::nullopt;
  // Only safe characters of the value are echoed (it ends up in a SQL literal: raise_statement).
  std::string shown;
  for (char c : value->substr(0, 64))
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ' ') shown += c;
  const char* expected = name == "meridian.routing" ? "split or primary" : "eventual, read-your-writes or primary";
  return setting_error{pr::sqlstate::invalid_parameter_value, "invalid value for parameter \"" + name + "\": \"" +
                                                                  shown + "\" (expected " + expected + ")"};
}

}  // namespace meridian::proxy::session_parts
