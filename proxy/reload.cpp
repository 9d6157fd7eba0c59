#include "proxy/reload.hpp"

#include <map>
#include <set>

#include "proxy/server_console.hpp"

namespace meridian::proxy {

namespace {

bool same_nodes(const config& a, const config& b) {
  if (a.nodes.size() != b.nodes.size()) return false;
  for (std::size_t i = 0; i < a.nodes.size(); ++i) {
    const auto &x = a.nodes[i], &y = b.nodes[i];
    if (x.name != y.name || x.region != y.region || x.host != y.host || x.port != y.port ||
        x.configured_role != y.configured_role || x.max_lag != y.max_lag || x.max_lag_bytes != y.max_lag_bytes)
      return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> needs_restart(const config& r, const config& n) {
  if (r.region != n.region) return "region";
  if (r.listen_host != n.listen_host || r.listen_port != n.listen_port) return "listen";
  if (r.threads != n.threads) return "threads";
  if (!same_nodes(r, n)) return "nodes";
  if (r.node_tls.size() != n.node_tls.size()) return "nodes";
  if (r.monitor.user != n.monitor.user || r.monitor.password != n.monitor.password ||
      r.monitor.database != n.monitor.database || r.monitor.sslmode != n.monitor.sslmode ||
      r.monitor.interval != n.monitor.interval || r.monitor.timeout != n.monitor.timeout)
    return "monitor";
  if (r.coordination.etcd != n.coordination.etcd || r.coordination.cluster != n.coordination.cluster ||
      r.coordination.lease_ttl != n.coordination.lease_ttl || r.coordination.regions != n.coordination.regions)
    return "coordination";
  const auto& a = r.failover;
  const auto& b = n.failover;
  if (a.automatic != b.automatic || a.user != b.user || a.password != b.password || a.database != b.database ||
      a.sslmode != b.sslmode || a.detection != b.detection || a.candidate_order != b.candidate_order ||
      a.prefer_ahead_bytes != b.prefer_ahead_bytes || a.max_data_loss_bytes != b.max_data_loss_bytes ||
      a.promote_timeout != b.promote_timeout || a.repoint_timeout != b.repoint_timeout ||
      a.primary_conninfo != b.primary_conninfo || a.promote_command != b.promote_command ||
      a.repoint_command != b.repoint_command || a.fence_command != b.fence_command || a.rejoin_command != b.rejoin_command)
    return "failover";
  if (r.metrics_host != n.metrics_host || r.metrics_port != n.metrics_port) return "metrics";
  if (r.admin_host != n.admin_host || r.admin_port != n.admin_port || r.admin_token != n.admin_token) return "admin";
  if (r.tls.client != n.tls.client) return "tls.client";
  if (r.replica_order != n.replica_order || r.max_lag != n.max_lag || r.max_lag_bytes != n.max_lag_bytes ||
      r.lag_readmit_ratio != n.lag_readmit_ratio)
    return "routing (lag limits and replica order are the node monitor's)";
  return std::nullopt;
}

std::vector<std::string> changed_settings(const config& r, const config& n) {
  std::vector<std::string> out;
  std::map<std::string, std::string> before, after;
  for (auto& row : config_rows(r)) before[row[0]] = row[1];
  for (auto& row : config_rows(n)) after[row[0]] = row[1];
  std::set<std::string> names;
  for (const auto& [k, v] : before) names.insert(k);
  for (const auto& [k, v] : after) names.insert(k);
  for (const auto& k : names)
    if (before[k] != after[k]) out.push_back(k);
  for (const auto& u : n.users) {
    const auto* old = r.find_user(u.name);
    if (old && (old->secret != u.secret || old->server_password != u.server_password)) out.push_back("users[" + u.name + "].password");
    if (old && (old->mode != u.mode || old->consistency != u.consistency)) out.push_back("users[" + u.name + "]");
  }
  return out;
}

}  // namespace meridian::proxy
