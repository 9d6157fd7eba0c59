#include "proxy/config.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace meridian::proxy {

namespace {

[[noreturn]] void fail(const std::string& key, const std::string& why) { throw config_error(key + ": " + why); }

std::string scalar(const YAML::Node& n, const std::string& key) {
  if (!n.IsScalar()) fail(key, "must be a scalar");
  return n.Scalar();
}

template <class Int>
Int integer(const YAML::Node& n, const std::string& key, Int min, Int max) {
  auto text = scalar(n, key);
  long long v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || p != text.data() + text.size()) fail(key, "must be an integer, got \"" + text + "\"");
  if (v < static_cast<long long>(min) || v > static_cast<long long>(max))
    fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  return static_cast<Int>(v);
}

std::chrono::milliseconds duration(const YAML::Node& n, const std::string& key) {
  auto d = parse_duration(scalar(n, key));
  if (!d) fail(key, "must be a duration such as 500ms, 5s, 10m or 1h, of at most ten years");
  return *d;
}

std::size_t size(const YAML::Node& n, const std::string& key) {
  auto s = parse_size(scalar(n, key));
  if (!s) fail(key, "must be a size such as 65536, 512KiB or 64MiB");
  return *s;
}

// Rejects keys we do not know, so a typo is an error rather than a silently ignored setting.
void only_keys(const YAML::Node& map, const std::string& where, std::initializer_list<const char*> allowed) {
  if (!map.IsMap()) fail(where.empty() ? "(top level)" : where, "must be a mapping");
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) fail(where.empty() ? "(top level)" : where, "has a key that is not a plain name");
    auto k = kv.first.as<std::string>();
    bool ok = false;
    for (auto a : allowed) ok = ok || k == a;
    if (!ok) fail(where.empty() ? k : where + "." + k, "unknown key");
  }
}

bool boolean(const YAML::Node& n, const std::string& key) {
  const auto v = scalar(n, key);
  if (v != "true" && v != "false") fail(key, "must be true or false");
  return v == "true";
}

routing::consistency parse_consistency(const YAML::Node& n, const std::string& key) {
  auto c = routing::parse_consistency(scalar(n, key));
  if (!c) fail(key, "must be eventual, read-your-writes or primary (split is eventual)");
  return *c;
}

// `consistency`, or its older spelling `routing` (split | primary), not both.
std::optional<routing::consistency> consistency_key(const YAML::Node& map, const std::string& where) {
  if (map["consistency"] && map["routing"]) fail(where, "set consistency or routing, not both");
  if (map["consistency"]) return parse_consistency(map["consistency"], where + ".consistency");
  if (map["routing"]) return parse_consistency(map["routing"], where + ".routing");
  return std::nullopt;
}

pool_mode parse_mode(const std::string& text, const std::string& key) {
  if (text == "transaction") return pool_mode::transaction;
  if (text == "session") return pool_mode::session;
  fail(key, "must be \"transaction\" or \"session\"");
}

std::string read_file(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  if (!in) fail(key, "cannot read file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return (std::filesystem::path(base_dir) / path).string();
}

// A list of strings, e.g. node or function names.
std::vector<std::string> string_list(const YAML::Node& n, const std::string& key, const char* what) {
  if (!n.IsSequence()) fail(key, std::string("must be a list of ") + what);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n.size(); ++i) out.push_back(scalar(n[i], key + "[" + std::to_string(i) + "]"));
  return out;
}

// A secret kept in a file; its trailing line break is not part of the secret.
std::string secret_file(const YAML::Node& n, const std::string& key, const std::string& base_dir) {
  auto text = read_file(resolve(base_dir, scalar(n, key)), key);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

// A secret of a mapping: `password` itself, `password_file` (a file holding it) or
// `password_env` (the name of an environment variable holding it), one of them at most. The
// value never appears in an error message.
std::optional<std::string> password_key(const YAML::Node& map, const std::string& where, const char* plain,
                                        const char* file, const std::string& base_dir) {
  const std::string env = std::string(plain) + "_env";
  if ((map[plain] ? 1 : 0) + (map[file] ? 1 : 0) + (map[env] ? 1 : 0) > 1)
    fail(where, std::string("set one of ") + plain + ", " + file + " or " + env);
  if (map[plain]) return scalar(map[plain], where + "." + plain);
  if (map[file]) return secret_file(map[file], where + "." + file, base_dir);
  if (map[env]) {
    const auto name = scalar(map[env], where + "." + env);
    const char* value = std::getenv(name.c_str());
    if (!value || !*value) fail(where + "." + env, "the environment variable " + name + " is not set");
    return std::string(value);
  }
  return std::nullopt;
}

}  // namespace

const user_config* config::find_user(std::string_view name) const {
  for (const auto& u : users)
    if (u.name == name) return &u;
  return nullptr;
}

routing::consistency config::consistency_for(const user_config* user, std::string_view database) const {
  if (user && user->consistency) return *user->consistency;
  for (const auto& d : databases)
    if (d.name == database && d.consistency) return *d.consistency;
  return consistency;
}

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  long long v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || v < 0) return std::nullopt;
  std::string_view unit(p, static_cast<std::size_t>(text.data() + text.size() - p));
  long long per_unit = 0;
  if (unit.empty() || unit == "s") per_unit = 1000;
  else if (unit == "ms") per_unit = 1;
  else if (unit == "m" || unit == "min") per_unit = 60'000;
  else if (unit == "h") per_unit = 3'600'000;
  else return std::nullopt;
  // At most ten years: every duration is added to a clock's now() somewhere, in nanoseconds.
  constexpr long long max_ms = 10LL * 365 * 24 * 3'600'000;
  long long ms = 0;
  if (__builtin_mul_overflow(v, per_unit, &ms) || ms > max_ms) return std::nullopt;
  return std::chrono::milliseconds(ms);
}

std::optional<std::size_t> parse_size(std::string_view text) {
  if (text.empty()) return std::nullopt;
  unsigned long long v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{}) return std::nullopt;
  std::string_view unit(p, static_cast<std::size_t>(text.data() + text.size() - p));
  unsigned long long mult = 1;
  if (unit.empty() || unit == "B") mult = 1;
  else if (unit == "kB" || unit == "KiB") mult = 1024;
  else if (unit == "MB" || unit == "MiB") mult = 1024 * 1024;
  else if (unit == "GB" || unit == "GiB") mult = 1024ull * 1024 * 1024;
  else return std::nullopt;
  std::size_t bytes = 0;
  if (__builtin_mul_overflow(v, mult, &bytes)) return std::nullopt;  // more bytes than fit
  return bytes;
}

std::vector<user_config> parse_userlist(const std::string& text, const std::string& source) {
  std::vector<user_config> users;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    std::size_t i = 0;
    auto skip_ws = [&] {
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r')) ++i;
    };
    auto quoted = [&](std::string& out) {
      skip_ws();
      if (i >= line.size() || line[i] != '"') return false;
      ++i;
      for (; i < line.size(); ++i) {
        if (line[i] == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            out.push_back('"');
            ++i;
          } else {
            ++i;
            return true;
          }
        } else {
          out.push_back(line[i]);
        }
      }
      return false;
    };
    skip_ws();
    if (i >= line.size() || line[i] == ';' || line[i] == '#') continue;
    user_config u;
    if (!quoted(u.name) || !quoted(u.secret) || u.name.empty())
      fail(source + ":" + std::to_string(lineno), "expected \"user\" \"secret\"");
    users.push_back(std::move(u));
  }
  return users;
}

namespace {

config build_config(const YAML::Node& root, const std::string& base_dir) {
  config c;
  only_keys(root, "",
            {"region", "listen", "threads", "nodes", "pool", "routing", "monitor", "coordination", "failover", "limits",
             "auth", "users", "databases", "log", "metrics", "admin", "tls", "server_tls"});
  auto server_tls_of = [&](const YAML::Node& n, const std::string& where, server_tls_config t) {
    if (n["sslmode"]) {
      t.sslmode = scalar(n["sslmode"], where + "sslmode");
      static const std::set<std::string> modes{"disable", "prefer", "require", "verify-ca", "verify-full"};
      if (!modes.count(t.sslmode)) fail(where + "sslmode", "must be disable, prefer, require, verify-ca or verify-full");
    }
    if (n["sslrootcert"]) t.root_cert = resolve(base_dir, scalar(n["sslrootcert"], where + "sslrootcert"));
    if ((t.sslmode == "verify-ca" || t.sslmode == "verify-full") && t.root_cert.empty())
      fail(where + "sslrootcert", "is required with sslmode " + t.sslmode);
    return t;
  };
  if (auto st = root["server_tls"]) {
    only_keys(st, "server_tls", {"sslmode", "sslrootcert"});
    c.server_tls = server_tls_of(st, "server_tls.", c.server_tls);
  }
  if (auto t = root["tls"]) {
    only_keys(t, "tls", {"client", "cert", "key", "min_version"});
    if (t["cert"]) c.tls.cert_file = resolve(base_dir, scalar(t["cert"], "tls.cert"));
    if (t["key"]) c.tls.key_file = resolve(base_dir, scalar(t["key"], "tls.key"));
    c.tls.client = c.tls.cert_file.empty() ? client_tls::disable : client_tls::allow;
    if (t["client"]) {
      auto mode = scalar(t["client"], "tls.client");
      if (mode == "disable") {
        c.tls.client = client_tls::disable;
      } else if (mode == "allow") {
        c.tls.client = client_tls::allow;
      } else if (mode == "required" || mode == "require") {
        c.tls.client = client_tls::required;
      } else {
        fail("tls.client", "must be disable, allow or required");
      }
    }
    if (c.tls.client != client_tls::disable && (c.tls.cert_file.empty() || c.tls.key_file.empty()))
      fail("tls", "cert and key are required unless client is disable");
    if (t["min_version"]) {
      c.tls.min_version = scalar(t["min_version"], "tls.min_version");
      if (c.tls.min_version != "1.2" && c.tls.min_version != "1.3") fail("tls.min_version", "must be 1.2 or 1.3");
    }
  }
  if (auto a = root["admin"]) {
    only_keys(a, "admin", {"host", "port", "token", "token_file", "token_env", "users"});
    if (auto u = a["users"]) {
      if (!u.IsSequence()) fail("admin.users", "must be a list of user names");
      for (std::size_t i = 0; i < u.size(); ++i) c.admin_users.push_back(scalar(u[i], "admin.users"));
    }
    if (a["host"]) c.admin_host = scalar(a["host"], "admin.host");
    if (a["port"]) c.admin_port = integer<std::uint16_t>(a["port"], "admin.port", 1, 65535);
    if (auto t = password_key(a, "admin", "token", "token_file", base_dir)) c.admin_token = *t;
    if (c.admin_port != 0 && c.admin_token.size() < 16)
      fail("admin.token", "is required with admin.port, at least 16 characters (or admin.token_file)");
  }
  if (auto m = root["metrics"]) {
    only_keys(m, "metrics", {"host", "port"});
    if (m["host"]) c.metrics_host = scalar(m["host"], "metrics.host");
    if (m["port"]) c.metrics_port = integer<std::uint16_t>(m["port"], "metrics.port", 1, 65535);
  }

  if (!root["region"]) fail("region", "is required");
  c.region = scalar(root["region"], "region");

  if (auto l = root["listen"]) {
    only_keys(l, "listen", {"host", "port"});
    if (l["host"]) c.listen_host = scalar(l["host"], "listen.host");
    if (l["port"]) c.listen_port = integer<std::uint16_t>(l["port"], "listen.port", 1, 65535);
  }
  if (root["threads"]) c.threads = integer<unsigned>(root["threads"], "threads", 1, 256);

  if (auto r = root["routing"]) {
    only_keys(r, "routing",
              {"default", "consistency", "read_only_functions", "classification_cache", "replica_retry", "max_lag",
               "max_lag_bytes", "lag_readmit", "replica_order", "read_your_writes_wait"});
    if (r["default"] && r["consistency"]) fail("routing", "set consistency or default, not both");
    if (r["default"]) c.consistency = parse_consistency(r["default"], "routing.default");
    if (r["consistency"]) c.consistency = parse_consistency(r["consistency"], "routing.consistency");
    if (auto f = r["read_only_functions"])
      c.read_only_functions = string_list(f, "routing.read_only_functions", "function names");
    if (r["classification_cache"])
      c.classification_cache_size =
          integer<std::size_t>(r["classification_cache"], "routing.classification_cache", 16, 10'000'000);
    if (r["replica_retry"]) c.replica_retry = duration(r["replica_retry"], "routing.replica_retry");
    if (r["max_lag"]) c.max_lag = duration(r["max_lag"], "routing.max_lag");
    if (r["max_lag_bytes"]) c.max_lag_bytes = size(r["max_lag_bytes"], "routing.max_lag_bytes");
    if (r["lag_readmit"]) {
      auto text = scalar(r["lag_readmit"], "routing.lag_readmit");
      int percent = -1;
      if (text.size() > 1 && text.back() == '%') {
        auto [p, ec] = std::from_chars(text.data(), text.data() + text.size() - 1, percent);
        if (ec != std::errc{} || p != text.data() + text.size() - 1) percent = -1;
      }
      if (percent < 1 || percent > 100) fail("routing.lag_readmit", "must be a percentage from 1% to 100%");
      c.lag_readmit_ratio = percent / 100.0;
    }
    if (r["read_your_writes_wait"])
      c.read_your_writes_wait = duration(r["read_your_writes_wait"], "routing.read_your_writes_wait");
    if (auto o = r["replica_order"]) c.replica_order = string_list(o, "routing.replica_order", "node names");
  }

  auto nodes = root["nodes"];
  if (!nodes || !nodes.IsSequence() || nodes.size() == 0) fail("nodes", "must list at least one node");
  if (nodes.size() > routing::max_nodes) fail("nodes", "at most " + std::to_string(routing::max_nodes) + " nodes");
  std::set<std::string> names;
  int primaries = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const std::string key = "nodes[" + std::to_string(i) + "]";
    auto n = nodes[i];
    only_keys(n, key, {"name", "region", "host", "port", "role", "max_lag", "max_lag_bytes", "sslmode", "sslrootcert"});
    c.node_tls.push_back(server_tls_of(n, key + ".", c.server_tls));
    routing::node node;
    if (!n["name"]) fail(key + ".name", "is required");
    node.name = scalar(n["name"], key + ".name");
    if (!names.insert(node.name).second) fail(key + ".name", "duplicate node name \"" + node.name + "\"");
    node.region = n["region"] ? scalar(n["region"], key + ".region") : node.name;
    if (!n["host"]) fail(key + ".host", "is required");
    node.host = scalar(n["host"], key + ".host");
    if (n["port"]) node.port = integer<std::uint16_t>(n["port"], key + ".port", 1, 65535);
    if (!n["role"]) fail(key + ".role", "is required (primary or replica)");
    auto role = routing::parse_node_role(scalar(n["role"], key + ".role"));
    if (!role) fail(key + ".role", "must be \"primary\" or \"replica\"");
    node.configured_role = *role;
    node.max_lag = n["max_lag"] ? duration(n["max_lag"], key + ".max_lag") : c.max_lag;
    node.max_lag_bytes = n["max_lag_bytes"] ? size(n["max_lag_bytes"], key + ".max_lag_bytes") : c.max_lag_bytes;
    if (*role == routing::node_role::primary) ++primaries;
    c.nodes.push_back(std::move(node));
  }
  if (primaries != 1) fail("nodes", "exactly one node must have role: primary");
  for (std::size_t i = 0; i < c.replica_order.size(); ++i)
    if (!names.count(c.replica_order[i]))
      fail("routing.replica_order[" + std::to_string(i) + "]", "no node is named \"" + c.replica_order[i] + "\"");

  if (auto m = root["monitor"]) {
    only_keys(m, "monitor",
              {"user", "password", "password_file", "password_env", "database", "sslmode", "interval", "timeout"});
    if (!m["user"]) fail("monitor.user", "is required (a role with pg_monitor; the monitor logs in as it)");
    c.monitor.user = scalar(m["user"], "monitor.user");
    if (auto pw = password_key(m, "monitor", "password", "password_file", base_dir)) c.monitor.password = *pw;
    if (m["database"]) c.monitor.database = scalar(m["database"], "monitor.database");
    if (m["sslmode"]) {
      c.monitor.sslmode = scalar(m["sslmode"], "monitor.sslmode");
      static const std::set<std::string> modes{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"};
      if (!modes.count(c.monitor.sslmode)) fail("monitor.sslmode", "must be a libpq sslmode such as prefer or require");
    }
    if (m["interval"]) c.monitor.interval = duration(m["interval"], "monitor.interval");
    if (m["timeout"]) c.monitor.timeout = duration(m["timeout"], "monitor.timeout");
    if (c.monitor.interval.count() < 10) fail("monitor.interval", "must be at least 10ms");
    if (c.monitor.timeout.count() < 10) fail("monitor.timeout", "must be at least 10ms");
  }

  if (auto co = root["coordination"]) {
    only_keys(co, "coordination", {"etcd", "cluster", "lease_ttl", "regions", "authority_margin", "write_wait"});
    if (auto e = co["etcd"]) {
      if (!e.IsSequence() || e.size() == 0) fail("coordination.etcd", "must list etcd endpoints as host:port");
      for (std::size_t i = 0; i < e.size(); ++i) {
        auto ep = scalar(e[i], "coordination.etcd[" + std::to_string(i) + "]");
        if (ep.find(':') == std::string::npos) fail("coordination.etcd[" + std::to_string(i) + "]", "must be host:port");
        c.coordination.etcd.push_back(ep);
      }
    }
    if (co["cluster"]) c.coordination.cluster = scalar(co["cluster"], "coordination.cluster");
    if (co["lease_ttl"]) {
      auto ttl = duration(co["lease_ttl"], "coordination.lease_ttl");
      if (ttl.count() < 2000 || ttl.count() % 1000 != 0) fail("coordination.lease_ttl", "must be whole seconds, at least 2s");
      c.coordination.lease_ttl = std::chrono::duration_cast<std::chrono::seconds>(ttl);
    }
    if (co["regions"]) c.coordination.regions = integer<std::size_t>(co["regions"], "coordination.regions", 1, 64);
    if (co["authority_margin"]) c.coordination.authority_margin = duration(co["authority_margin"], "coordination.authority_margin");
    if (co["write_wait"]) c.coordination.write_wait = duration(co["write_wait"], "coordination.write_wait");
    const auto ttl = std::chrono::duration_cast<std::chrono::milliseconds>(c.coordination.lease_ttl);
    if (c.coordination.authority_margin.count() < 100 || c.coordination.authority_margin * 2 > ttl)
      fail("coordination.authority_margin", "must be at least 100ms and at most half of lease_ttl");
  }
  if (auto f = root["failover"]) {
    only_keys(f, "failover", {"automatic", "user", "password", "password_file", "password_env", "database", "sslmode", "detection", "detection_refused",
                              "candidate_order", "nearest", "prefer_ahead", "catch_up_timeout", "max_data_loss", "promote_timeout",
                              "repoint_timeout", "hold_timeout", "hold_clients",
                              "primary_conninfo", "promote_command", "repoint_command", "fence_command",
                              "rejoin_command"});
    auto& fo = c.failover;
    if (!f["user"]) fail("failover.user", "is required (a superuser: pg_promote, ALTER SYSTEM, pg_terminate_backend)");
    fo.user = scalar(f["user"], "failover.user");
    if (auto pw = password_key(f, "failover", "password", "password_file", base_dir)) fo.password = *pw;
    if (f["automatic"]) {
      auto a = scalar(f["automatic"], "failover.automatic");
      if (a != "true" && a != "false") fail("failover.automatic", "must be true or false");
      fo.automatic = a == "true";
    }
    if (f["database"]) fo.database = scalar(f["database"], "failover.database");
    if (f["sslmode"]) fo.sslmode = scalar(f["sslmode"], "failover.sslmode");
    if (f["detection"]) fo.detection = duration(f["detection"], "failover.detection");
    if (f["detection_refused"]) fo.detection_refused = duration(f["detection_refused"], "failover.detection_refused");
    if (auto o = f["candidate_order"]) fo.candidate_order = string_list(o, "failover.candidate_order", "node names");
    if (f["nearest"]) {
      auto n = scalar(f["nearest"], "failover.nearest");
      if (n != "measured" && n != "configured") fail("failover.nearest", "must be measured or configured, got \"" + n + "\"");
      fo.measured_distance = n == "measured";
    }
    if (f["prefer_ahead"]) fo.prefer_ahead_bytes = size(f["prefer_ahead"], "failover.prefer_ahead");
    if (f["max_data_loss"]) fo.max_data_loss_bytes = size(f["max_data_loss"], "failover.max_data_loss");
    if (f["catch_up_timeout"]) fo.catch_up_timeout = duration(f["catch_up_timeout"], "failover.catch_up_timeout");
    if (f["promote_timeout"]) fo.promote_timeout = duration(f["promote_timeout"], "failover.promote_timeout");
    if (f["repoint_timeout"]) fo.repoint_timeout = duration(f["repoint_timeout"], "failover.repoint_timeout");
    if (f["hold_timeout"]) fo.hold_timeout = duration(f["hold_timeout"], "failover.hold_timeout");
    if (f["hold_clients"]) fo.hold_clients = integer<std::size_t>(f["hold_clients"], "failover.hold_clients", 0, 1'000'000);
    if (f["primary_conninfo"]) fo.primary_conninfo = scalar(f["primary_conninfo"], "failover.primary_conninfo");
    if (f["promote_command"]) fo.promote_command = scalar(f["promote_command"], "failover.promote_command");
    if (f["repoint_command"]) fo.repoint_command = scalar(f["repoint_command"], "failover.repoint_command");
    if (f["fence_command"]) fo.fence_command = scalar(f["fence_command"], "failover.fence_command");
    if (f["rejoin_command"]) fo.rejoin_command = scalar(f["rejoin_command"], "failover.rejoin_command");
  }
  for (std::size_t i = 0; i < c.failover.candidate_order.size(); ++i)
    if (!names.count(c.failover.candidate_order[i]))
      fail("failover.candidate_order[" + std::to_string(i) + "]",
           "no node is named \"" + c.failover.candidate_order[i] + "\"");

  if (auto p = root["pool"]) {
    only_keys(p, "pool", {"mode", "size", "connect_timeout", "idle_timeout", "wait_timeout", "server_lifetime",
                          "max_prepared_statements", "reset_query", "reset_after_functions"});
    if (p["mode"]) c.mode = parse_mode(scalar(p["mode"], "pool.mode"), "pool.mode");
    if (p["size"]) c.pool_size = integer<std::size_t>(p["size"], "pool.size", 1, 100'000);
    if (p["connect_timeout"]) c.connect_timeout = duration(p["connect_timeout"], "pool.connect_timeout");
    if (p["idle_timeout"]) c.idle_timeout = duration(p["idle_timeout"], "pool.idle_timeout");
    if (p["wait_timeout"]) c.wait_timeout = duration(p["wait_timeout"], "pool.wait_timeout");
    if (p["server_lifetime"]) c.server_lifetime = duration(p["server_lifetime"], "pool.server_lifetime");
    if (p["max_prepared_statements"])
      c.max_prepared_per_server =
          integer<std::size_t>(p["max_prepared_statements"], "pool.max_prepared_statements", 1, 1'000'000);
    if (p["reset_query"]) c.reset_query = scalar(p["reset_query"], "pool.reset_query");
    if (p["reset_after_functions"])
      c.reset_after_functions = boolean(p["reset_after_functions"], "pool.reset_after_functions");
  }


  if (auto l = root["limits"]) {
    only_keys(l, "limits", {"max_clients", "max_clients_per_user", "max_clients_per_database", "max_message_size",
                            "startup_timeout", "shutdown_timeout", "idle_in_transaction_timeout", "max_auth_failures",
                            "auth_failure_window", "auth_failure_delay", "auth_failure_max_delay"});
    // Before the auth failure delays, which must fit inside it.
    if (l["startup_timeout"]) {
      c.startup_timeout = duration(l["startup_timeout"], "limits.startup_timeout");
      // 0 would close every client before it could log in.
      if (c.startup_timeout.count() <= 0) fail("limits.startup_timeout", "must be longer than 0");
    }
    if (l["max_auth_failures"])
      c.max_auth_failures = integer<std::size_t>(l["max_auth_failures"], "limits.max_auth_failures", 0, 1'000'000);
    if (l["auth_failure_window"]) {
      c.auth_failure_window = duration(l["auth_failure_window"], "limits.auth_failure_window");
      if (c.auth_failure_window.count() <= 0) fail("limits.auth_failure_window", "must be longer than 0");
    }
    if (l["auth_failure_delay"]) c.auth_failure_delay = duration(l["auth_failure_delay"], "limits.auth_failure_delay");
    if (l["auth_failure_max_delay"])
      c.auth_failure_max_delay = duration(l["auth_failure_max_delay"], "limits.auth_failure_max_delay");
    if (c.auth_failure_max_delay >= c.startup_timeout) {
      if (l["auth_failure_max_delay"]) fail("limits.auth_failure_max_delay", "must be shorter than limits.startup_timeout");
      // The default would outlast a short start-up deadline, which would close a client whose
      // login failed before its answer is sent: half the deadline instead.
      c.auth_failure_max_delay = c.startup_timeout / 2;
    }
    if (l["idle_in_transaction_timeout"])
      c.idle_in_transaction_timeout = duration(l["idle_in_transaction_timeout"], "limits.idle_in_transaction_timeout");
    if (l["max_clients"]) c.max_clients = integer<std::size_t>(l["max_clients"], "limits.max_clients", 1, 10'000'000);
    if (l["max_clients_per_user"])
      c.max_clients_per_user = integer<std::size_t>(l["max_clients_per_user"], "limits.max_clients_per_user", 0, 10'000'000);
    if (l["max_clients_per_database"])
      c.max_clients_per_database =
          integer<std::size_t>(l["max_clients_per_database"], "limits.max_clients_per_database", 0, 10'000'000);
    if (l["max_message_size"]) {
      c.max_message_bytes = size(l["max_message_size"], "limits.max_message_size");
      if (c.max_message_bytes < 1024 || c.max_message_bytes > (1ull << 30))
        fail("limits.max_message_size", "must be between 1KiB and 1GiB");
    }
    if (l["shutdown_timeout"]) c.shutdown_timeout = duration(l["shutdown_timeout"], "limits.shutdown_timeout");
  }

  if (auto a = root["auth"]) {
    only_keys(a, "auth", {"method", "userlist", "user", "query", "database", "cache"});
    if (a["user"]) c.auth_query.user = scalar(a["user"], "auth.user");
    if (a["query"]) {
      c.auth_query.query = scalar(a["query"], "auth.query");
      if (c.auth_query.query.find("$1") == std::string::npos) fail("auth.query", "must take the user name as $1");
    }
    if (a["database"]) c.auth_query.database = scalar(a["database"], "auth.database");
    if (a["cache"]) c.auth_query.cache = duration(a["cache"], "auth.cache");
    if (a["method"]) {
      auto m = scalar(a["method"], "auth.method");
      if (m == "trust") c.auth = auth_method::trust;
      else if (m == "md5") c.auth = auth_method::md5;
      else if (m == "scram-sha-256") c.auth = auth_method::scram_sha_256;
      else fail("auth.method", "must be trust, md5 or scram-sha-256");
    }
    if (a["userlist"]) {
      auto path = resolve(base_dir, scalar(a["userlist"], "auth.userlist"));
      for (auto& u : parse_userlist(read_file(path, "auth.userlist"), path)) c.users.push_back(std::move(u));
    }
  }

  if (auto users = root["users"]) {
    if (!users.IsSequence()) fail("users", "must be a list");
    for (std::size_t i = 0; i < users.size(); ++i) {
      const std::string key = "users[" + std::to_string(i) + "]";
      auto u = users[i];
      only_keys(u, key, {"name", "password", "password_file", "password_env", "server_password", "server_password_file",
                         "server_password_env", "pool_mode",
                         "routing", "consistency"});
      user_config uc;
      if (!u["name"]) fail(key + ".name", "is required");
      uc.name = scalar(u["name"], key + ".name");
      if (auto pw = password_key(u, key, "password", "password_file", base_dir)) uc.secret = *pw;
      uc.server_password = password_key(u, key, "server_password", "server_password_file", base_dir);
      if (u["pool_mode"]) uc.mode = parse_mode(scalar(u["pool_mode"], key + ".pool_mode"), key + ".pool_mode");
      uc.consistency = consistency_key(u, key);
      // A later definition of the same user (config after userlist) wins.
      std::erase_if(c.users, [&](const user_config& e) { return e.name == uc.name; });
      c.users.push_back(std::move(uc));
    }
  }
  for (const auto& name : c.admin_users)
    if (!c.find_user(name)) fail("admin.users", "names " + name + ", who is not one of users");
  if (c.auth_query.enabled()) {
    const auto* u = c.find_user(c.auth_query.user);
    if (!u) fail("auth.user", "must be one of users (Meridian logs in as it to run auth.query)");
    if (c.auth == auth_method::trust) fail("auth.user", "is pointless with auth.method trust");
  }
  if (c.auth != auth_method::trust)
    for (std::size_t i = 0; i < c.users.size(); ++i)
      if (c.users[i].secret.empty()) fail("users[" + c.users[i].name + "].password", "is required unless auth.method is trust");

  if (auto dbs = root["databases"]) {
    if (!dbs.IsSequence()) fail("databases", "must be a list");
    for (std::size_t i = 0; i < dbs.size(); ++i) {
      const std::string key = "databases[" + std::to_string(i) + "]";
      auto d = dbs[i];
      only_keys(d, key, {"name", "routing", "consistency"});
      database_config dc;
      if (!d["name"]) fail(key + ".name", "is required");
      dc.name = scalar(d["name"], key + ".name");
      dc.consistency = consistency_key(d, key);
      c.databases.push_back(std::move(dc));
    }
  }

  if (auto l = root["log"]) {
    only_keys(l, "log", {"level", "format", "slow_statement", "statement_text", "statement_max"});
    if (l["format"]) {
      const auto f = scalar(l["format"], "log.format");
      if (f != "text" && f != "json") fail("log.format", "must be text or json");
      c.log_json = f == "json";
    }
    if (l["slow_statement"]) c.slow_statement = duration(l["slow_statement"], "log.slow_statement");
    if (l["statement_text"]) c.log_statement_text = boolean(l["statement_text"], "log.statement_text");
    if (l["statement_max"])
      c.log_statement_max = integer<std::size_t>(l["statement_max"], "log.statement_max", 16, 100'000);
    if (l["level"]) {
      c.log_level = scalar(l["level"], "log.level");
      static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
      if (!levels.count(c.log_level)) fail("log.level", "must be one of trace, debug, info, warn, error, critical, off");
    }
  }
  if ((c.failover.enabled() || !c.coordination.etcd.empty()) && !c.monitor.enabled())
    fail("monitor", "is required for coordination and failover (they act on what the monitor sees)");
  return c;
}

}  // namespace

config load_config_string(const std::string& yaml, const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw config_error(std::string("invalid YAML: ") + e.what());
  }
  try {
    return build_config(root, base_dir);
  } catch (const YAML::Exception& e) {
    // A shape the checks above did not foresee (found by fuzzing): still a clear refusal.
    throw config_error(std::string("unexpected structure: ") + e.what());
  }
}

config load_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw config_error("cannot read config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto dir = std::filesystem::path(path).parent_path().string();
  return load_config_string(ss.str(), dir.empty() ? "." : dir);
}

}  // namespace meridian::proxy
