#include "proxy/server_console.hpp"

#include <nlohmann/json.hpp>

#include <map>

#include "failover/coordinator.hpp"

namespace meridian::proxy {

namespace {

std::string ms(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

server_console::server_console(std::vector<worker*> workers, shared_state& shared, failover::coordinator* coordinator,
                               asio::io_context* coordinator_io, hooks h)
    : workers_(std::move(workers)),
      shared_(shared),
      coordinator_(coordinator),
      coordinator_io_(coordinator_io),
      hooks_(std::move(h)) {}

awaitable<std::vector<std::vector<std::string>>> server_console::gather(console_command c) {
  std::vector<std::vector<std::string>> rows;
  for (auto* w : workers_) {
    auto part = co_await asio::co_spawn(w->io(), w->console_rows(c), asio::use_awaitable);
    for (auto& r : part) rows.push_back(std::move(r));
    if (c == console_command::show_nodes) break;  // every worker holds the same topology
  }
  co_return rows;
}

awaitable<table> server_console::show(console_command c) {
  table t;
  switch (c) {
    case console_command::show_help:
      t.columns = {"command", "shows or does"};
      t.rows = {{"SHOW POOLS", "server connections per node, database and user; clients waiting"},
                {"SHOW CLIENTS", "client connections: user, database, address, TLS, state, node"},
                {"SHOW SERVERS", "server connections: node, state, the client using it, backend pid"},
                {"SHOW NODES", "role, health and lag of every node as this region sees them"},
                {"SHOW TOPOLOGY", "epoch, primary, leader, every region's view (with etcd)"},
                {"SHOW STATS", "Meridian's counters and gauges"},
                {"SHOW CONFIG", "the settings in force (no secrets)"},
                {"RELOAD", "read the config file again (as SIGHUP)"},
                {"PAUSE", "hold new transactions (in every region with etcd)"},
                {"RESUME", "let them run"},
                {"SHUTDOWN", "drain and stop this Meridian (as SIGTERM)"}};
      break;
    case console_command::show_pools: {
      t.columns = {"node", "database", "user", "sv_active", "sv_idle", "sv_total", "sv_max", "cl_waiting", "connects",
                   "checkouts", "wait_timeouts"};
      // One row per pool: each worker thread has its share, summed here.
      std::map<std::vector<std::string>, std::vector<long long>> pools;
      for (const auto& r : co_await gather(c)) {
        auto& sums = pools[{r[0], r[1], r[2]}];
        sums.resize(r.size() - 3);
        for (std::size_t i = 3; i < r.size(); ++i) sums[i - 3] += std::stoll(r[i]);
      }
      for (const auto& [key, sums] : pools) {
        auto row = key;
        for (auto v : sums) row.push_back(std::to_string(v));
        t.rows.push_back(std::move(row));
      }
      break;
    }
    case console_command::show_clients:
      t.columns = {"id", "user", "database", "address", "tls", "state", "node", "connected_s", "consistency"};
      t.rows = co_await gather(c);
      break;
    case console_command::show_servers:
      t.columns = {"node", "database", "user", "state", "client", "backend_pid", "age_s", "idle_s"};
      t.rows = co_await gather(c);
      break;
    case console_command::show_nodes:
      t.columns = {"node", "region", "role", "local", "up", "readable", "lag_bytes", "lag_ms", "probe_ms", "timeline",
                   "problem"};
      t.rows = co_await gather(c);
      break;
    case console_command::show_topology: {
      t.columns = {"key", "value"};
      if (!coordinator_) {
        t.rows = {{"region", shared_.cfg.load()->region}, {"coordination", "none"}};
        break;
      }
      auto body = co_await asio::co_spawn(*coordinator_io_, coordinator_->status_json(), asio::use_awaitable);
      auto j = nlohmann::json::parse(body, nullptr, false);
      if (!j.is_object()) break;
      // Nested objects one level flat ("topology.epoch"); lists (every region's view) as JSON.
      auto text = [](const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
      for (const auto& [k, v] : j.items()) {
        if (v.is_object()) {
          for (const auto& [sub, sv] : v.items()) t.rows.push_back({k + "." + sub, text(sv)});
        } else {
          t.rows.push_back({k, text(v)});
        }
      }
      break;
    }
    case console_command::show_stats:
      t.columns = {"metric", "labels", "value"};
      t.rows = shared_.stats->rows();
      break;
    case console_command::show_config:
      t.columns = {"setting", "value"};
      t.rows = config_rows(*shared_.cfg.load());
      break;
    default:
      break;
  }
  co_return t;
}

awaitable<tl::expected<std::string, std::string>> server_console::act(console_command c) {
  switch (c) {
    case console_command::reload:
      co_return hooks_.reload();
    case console_command::pause:
    case console_command::resume: {
      const bool paused = c == console_command::pause;
      if (!coordinator_) {
        hooks_.pause_here(paused);
        co_return std::string(paused ? "new transactions held" : "new transactions run");
      }
      auto done = co_await asio::co_spawn(*coordinator_io_, coordinator_->request_pause(paused), asio::use_awaitable);
      if (!done) co_return tl::unexpected(done.error());
      co_return std::string(paused ? "new transactions held in every region" : "new transactions run in every region");
    }
    case console_command::shutdown:
      hooks_.shutdown();
      co_return std::string("draining: open transactions finish, then Meridian stops");
    default:
      co_return tl::unexpected(std::string("not an action"));
  }
}

std::vector<std::vector<std::string>> config_rows(const config& c) {
  std::vector<std::vector<std::string>> rows = {
      {"region", c.region},
      {"listen", c.listen_host + ":" + std::to_string(c.listen_port)},
      {"threads", std::to_string(c.threads)},
      {"pool.mode", c.mode == pool_mode::transaction ? "transaction" : "session"},
      {"pool.size", std::to_string(c.pool_size)},
      {"pool.connect_timeout", ms(c.connect_timeout)},
      {"pool.idle_timeout", ms(c.idle_timeout)},
      {"pool.wait_timeout", ms(c.wait_timeout)},
      {"pool.server_lifetime", ms(c.server_lifetime)},
      {"pool.max_prepared_statements", std::to_string(c.max_prepared_per_server)},
      {"pool.reset_query", c.reset_query},
      {"pool.reset_after_functions", c.reset_after_functions ? "true" : "false"},
      {"limits.max_clients", std::to_string(c.max_clients)},
      {"limits.max_clients_per_user", std::to_string(c.max_clients_per_user)},
      {"limits.max_clients_per_database", std::to_string(c.max_clients_per_database)},
      {"limits.max_message_size", std::to_string(c.max_message_bytes)},
      {"limits.startup_timeout", ms(c.startup_timeout)},
      {"limits.idle_in_transaction_timeout", ms(c.idle_in_transaction_timeout)},
      {"limits.shutdown_timeout", ms(c.shutdown_timeout)},
      {"limits.max_auth_failures", std::to_string(c.max_auth_failures)},
      {"limits.auth_failure_window", ms(c.auth_failure_window)},
      {"limits.auth_failure_delay", ms(c.auth_failure_delay)},
      {"routing.consistency", std::string(routing::to_string(c.consistency))},
      {"routing.max_lag", ms(c.max_lag)},
      {"routing.replica_order", joined(c.replica_order)},
      {"auth.method", c.auth == auth_method::trust ? "trust" : c.auth == auth_method::md5 ? "md5" : "scram-sha-256"},
      {"auth.user", c.auth_query.user},
      {"tls.client", c.tls.client == client_tls::disable ? "disable" : c.tls.client == client_tls::allow ? "allow" : "required"},
      {"tls.cert", c.tls.cert_file},
      {"tls.min_version", c.tls.min_version},
      {"server_tls.sslmode", c.server_tls.sslmode},
      {"monitor.user", c.monitor.user},
      {"monitor.interval", ms(c.monitor.interval)},
      {"failover.automatic", c.failover.enabled() && c.failover.automatic ? "on" : "off"},
      {"failover.detection", ms(c.failover.detection)},
      {"coordination.etcd", joined(c.coordination.etcd)},
      {"log.level", c.log_level},
      {"log.format", c.log_json ? "json" : "text"},
      {"log.slow_statement", ms(c.slow_statement)},
      {"log.statement_text", c.log_statement_text ? "true" : "false"},
      {"admin.users", joined(c.admin_users)},
  };
  std::vector<std::string> names;
  for (const auto& u : c.users) names.push_back(u.name);
  rows.push_back({"users", joined(names)});
  for (const auto& n : c.nodes) {
    if (n.removed) continue;
    rows.push_back({"node " + n.name, n.host + ":" + std::to_string(n.port) + " " +
                                          std::string(routing::to_string(n.configured_role)) + " in " + n.region +
                                          ", max_lag " + std::to_string(n.max_lag.count()) + " ms" +
                                          (n.max_lag_bytes ? " / " + std::to_string(n.max_lag_bytes) + " bytes" : "")});
  }
  return rows;
}

}  // namespace meridian::proxy
