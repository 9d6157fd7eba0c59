#include "proxy/console.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <utility>

#include "protocol/backend.hpp"

namespace meridian::proxy {

namespace {

constexpr std::array<std::pair<std::string_view, console_command>, 12> commands{{
    {"help", console_command::show_help},
    {"pools", console_command::show_pools},
    {"clients", console_command::show_clients},
    {"servers", console_command::show_servers},
    {"nodes", console_command::show_nodes},
    {"topology", console_command::show_topology},
    {"stats", console_command::show_stats},
    {"config", console_command::show_config},
    {"reload", console_command::reload},
    {"pause", console_command::pause},
    {"resume", console_command::resume},
    {"shutdown", console_command::shutdown},
}};

std::string lower_words(std::string_view sql) {
  // Blanks collapsed to one space, trailing ';' dropped, lower case.
  std::string out;
  for (char c : sql) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isspace(u)) {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += static_cast<char>(std::tolower(u));
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

}  // namespace

std::string_view console_command_name(console_command c) {
  for (const auto& [name, cmd] : commands)
    if (cmd == c) return name;
  return "?";
}

std::optional<console_command> console_command_named(std::string_view name) {
  for (const auto& [n, cmd] : commands)
    if (n == name) return cmd;
  return std::nullopt;
}

bool is_show(console_command c) {
  return c != console_command::reload && c != console_command::pause && c != console_command::resume &&
         c != console_command::shutdown;
}

tl::expected<console_command, std::string> parse_console_command(std::string_view sql) {
  const std::string words = lower_words(sql);
  std::string_view rest = words;
  const bool show = rest.starts_with("show ");
  if (show) rest.remove_prefix(5);
  auto c = console_command_named(rest);
  if (c && show == is_show(*c)) return *c;
  return tl::unexpected(std::string("unknown console command; try SHOW HELP, SHOW POOLS | CLIENTS | SERVERS | NODES | "
                                    "TOPOLOGY | STATS | CONFIG, RELOAD, PAUSE, RESUME, SHUTDOWN"));
}

void append_table(std::string& out, const table& t) {
  namespace be = protocol::be;
  be::row_description desc;
  for (const auto& name : t.columns) desc.fields.push_back(be::field_description{name, 0, 0, 25, -1, -1, 0});
  be::serialize(desc, out);
  for (const auto& row : t.rows) {
    be::data_row dr;
    for (const auto& v : row) dr.columns.emplace_back(v);
    be::serialize(dr, out);
  }
  const std::string tag = "SHOW " + std::to_string(t.rows.size());
  be::serialize(be::command_complete{tag}, out);
}

std::string table_json(const table& t) {
  auto rows = nlohmann::json::array();
  for (const auto& r : t.rows) {
    auto o = nlohmann::json::object();
    for (std::size_t i = 0; i < t.columns.size() && i < r.size(); ++i) o[t.columns[i]] = r[i];
    rows.push_back(std::move(o));
  }
  return rows.dump();
}

}  // namespace meridian::proxy
