#include "proxy/params.hpp"

#include <algorithm>
#include <array>
#include <utility>

namespace meridian::proxy {

namespace {
constexpr std::array<std::pair<std::string_view, std::string_view>, 13> reported_names{{
    {"application_name", "application_name"},
    {"client_encoding", "client_encoding"},
    {"datestyle", "DateStyle"},
    {"default_transaction_read_only", "default_transaction_read_only"},
    {"in_hot_standby", "in_hot_standby"},
    {"integer_datetimes", "integer_datetimes"},
    {"intervalstyle", "IntervalStyle"},
    {"is_superuser", "is_superuser"},
    {"server_encoding", "server_encoding"},
    {"server_version", "server_version"},
    {"session_authorization", "session_authorization"},
    {"standard_conforming_strings", "standard_conforming_strings"},
    {"timezone", "TimeZone"},
}};
}  // namespace

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool is_tracked_parameter(std::string_view n) {
  return n == "application_name" || n == "client_encoding" || n == "datestyle" || n == "intervalstyle" ||
         n == "timezone" || n == "standard_conforming_strings" || n == "default_transaction_read_only";
}

bool is_tainting_parameter(std::string_view n) { return n == "session_authorization" || n == "is_superuser"; }

std::string_view canonical_parameter_name(std::string_view n) {
  for (const auto& [l, c] : reported_names)
    if (l == n) return c;
  return n;
}

bool is_valid_parameter_name(std::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.'))
      return false;
  return true;
}

std::string quote_literal(std::string_view value) {
  const bool backslash = value.find('\\') != std::string_view::npos;
  std::string out = backslash ? "E'" : "'";
  for (char c : value) {
    if (c == '\'') out += "''";
    else if (c == '\\') out += "\\\\";
    else out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

std::string parameter_sync_sql(const param_map& wanted, const param_map& current, const param_map& baseline) {
  std::string sql;
  for (const auto& [k, v] : wanted) {
    auto it = current.find(k);
    if (it != current.end() && it->second == v) continue;
    // set_config takes the value as the configuration file would (a list stays a list), which
    // is also how SHOW and ParameterStatus print it.
    sql += "SELECT pg_catalog.set_config(" + quote_literal(k) + ", " + quote_literal(v) + ", false);";
  }
  for (const auto& [k, v] : current) {
    if (wanted.count(k)) continue;
    auto b = baseline.find(k);
    if (b != baseline.end() && b->second == v) continue;
    if (b != baseline.end() && !is_tracked_parameter(k)) continue;  // server-level, not ours to reset
    sql += "RESET " + k + ";";
  }
  return sql;
}

namespace {
std::size_t hash_of(const param_map& m) {
  std::size_t h = m.size();
  for (const auto& [k, v] : m) {
    h = h * 1000003 ^ std::hash<std::string_view>{}(k);
    h = h * 1000003 ^ std::hash<std::string_view>{}(v);
  }
  return h;
}
}  // namespace

param_set param_sets::intern(param_map m) {
  const auto h = hash_of(m);
  auto [it, end] = sets_.equal_range(h);
  while (it != end) {
    auto held = it->second.lock();
    if (!held) {
      it = sets_.erase(it);
      continue;
    }
    if (*held == m) return held;
    ++it;
  }
  if (sets_.size() >= sweep_at_) sweep();
  auto set = std::make_shared<const param_map>(std::move(m));
  sets_.emplace(h, set);
  return set;
}

param_set param_sets::with(const param_set& base, const std::string& name, std::string value) {
  if (auto it = base->find(name); it != base->end() && it->second == value) return base;
  auto m = *base;
  m[name] = std::move(value);
  return intern(std::move(m));
}

std::size_t param_sets::size() {
  sweep();
  return sets_.size();
}

void param_sets::sweep() {
  std::erase_if(sets_, [](const auto& kv) { return kv.second.expired(); });
  sweep_at_ = std::max<std::size_t>(64, sets_.size() * 2);
}

bool parse_startup_options(std::string_view options, param_map& out) {
  // Words are separated by spaces; a backslash escapes the next character (libpq's rule).
  std::vector<std::string> words;
  std::string cur;
  bool have = false;
  for (std::size_t i = 0; i < options.size(); ++i) {
    char c = options[i];
    if (c == '\\' && i + 1 < options.size()) {
      cur.push_back(options[++i]);
      have = true;
    } else if (c == ' ' || c == '\t') {
      if (have) words.push_back(std::move(cur));
      cur.clear();
      have = false;
    } else {
      cur.push_back(c);
      have = true;
    }
  }
  if (have) words.push_back(std::move(cur));
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string_view w = words[i];
    std::string_view assignment;
    if (w == "-c" && i + 1 < words.size()) {
      assignment = words[++i];
    } else if (w.substr(0, 2) == "-c" && w.size() > 2) {
      assignment = w.substr(2);
    } else if (w.substr(0, 2) == "--") {
      assignment = w.substr(2);
    } else {
      return false;
    }
    auto eq = assignment.find('=');
    if (eq == std::string_view::npos) return false;
    auto name = lower(assignment.substr(0, eq));
    for (auto& c : name)
      if (c == '-') c = '_';
    if (!is_valid_parameter_name(name)) return false;
    out[name] = std::string(assignment.substr(eq + 1));
  }
  return true;
}

}  // namespace meridian::proxy
