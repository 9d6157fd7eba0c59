#pragma once
// The admin console: PgBouncer-style commands over the PostgreSQL protocol, in the virtual
// database "meridian", for the users admin.users names. This file holds what is pure — the
// commands, tables and their wire form; the data comes from a console_backend, which the
// server implements over every worker thread, the node monitor and the coordinator. The HTTP
// admin API serves the same tables as JSON.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "proxy/asio.hpp"

namespace meridian::proxy {

inline constexpr std::string_view console_database = "meridian";

enum class console_command {
  show_help,
  show_pools,
  show_clients,
  show_servers,
  show_nodes,
  show_topology,
  show_stats,
  show_config,
  reload,
  pause,
  resume,
  shutdown,
};

// "SHOW POOLS", "show pools;", "RELOAD" ... (case and surrounding blanks do not matter); the
// error names what is accepted.
[[nodiscard]] tl::expected<console_command, std::string> parse_console_command(std::string_view sql);
// The word after SHOW, or the command, in lower case: "pools", "reload".
[[nodiscard]] std::string_view console_command_name(console_command c);
[[nodiscard]] std::optional<console_command> console_command_named(std::string_view name);
[[nodiscard]] bool is_show(console_command c);

struct table {
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;  // each as long as columns
};

// RowDescription (every column text), DataRows and CommandComplete "SHOW" (row count in the
// tag, as PgBouncer).
void append_table(std::string& out, const table& t);
// [{"column": "value", ...}, ...]
[[nodiscard]] std::string table_json(const table& t);

// What the console shows and does.
class console_backend {
 public:
  virtual ~console_backend() = default;
  // A SHOW command's table.
  virtual awaitable<table> show(console_command c) = 0;
  // RELOAD, PAUSE, RESUME, SHUTDOWN: a line saying what happened, or why it could not.
  virtual awaitable<tl::expected<std::string, std::string>> act(console_command c) = 0;
};

}  // namespace meridian::proxy
