#include "proxy/reload.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "proxy/server_console.hpp"

namespace meridian::proxy {

void align_nodes(const config& running, config& next) {
  std::vector<routing::node> nodes;
  std::vector<server_tls_config> tls;
  std::vector<bool> placed(next.nodes.size(), false);
  for (std::size_t i = 0; i < running.nodes.size(); ++i) {
    const auto& old = running.nodes[i];
    auto it = std::find_if(next.nodes.begin(), next.nodes.end(), [&](const routing::node& n) { return n.name == old.name; });
    if (it == next.nodes.end()) {
      nodes.push_back(old);
      nodes.back().removed = true;
      tls.push_back(running.node_tls[i]);
      continue;
    }
    const auto j = static_cast<std::size_t>(it - next.nodes.begin());
    placed[j] = true;
    nodes.push_back(*it);
    tls.push_back(next.node_tls[j]);
  }
  for (std::size_t j = 0; j < next.nodes.size(); ++j) {
    if (placed[j]) continue;
    nodes.push_back(next.nodes[j]);
    tls.push_back(next.node_tls[j]);
  }
  if (nodes.size() > routing::max_nodes)
    throw config_error("nodes: Meridian knows at most " + std::to_string(routing::max_nodes) +
                       " nodes while it runs, removed ones included; this reload would make it " +
                       std::to_string(nodes.size()) + " (a restart starts the count afresh)");
  for (std::size_t i = 0; i < nodes.size(); ++i) nodes[i].id = routing::node_id{static_cast<std::uint16_t>(i)};
  next.nodes = std::move(nodes);
  next.node_tls = std::move(tls);
}

std::optional<std::string> needs_restart(const config& r, const config& n) {
  if (r.region != n.region) return "region";
  if (r.listen_host != n.listen_host || r.listen_port != n.listen_port) return "listen";
  if (r.threads != n.threads) return "threads";
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
      a.measured_distance != b.measured_distance ||
      a.prefer_ahead_bytes != b.prefer_ahead_bytes || a.max_data_loss_bytes != b.max_data_loss_bytes ||
      a.promote_timeout != b.promote_timeout || a.repoint_timeout != b.repoint_timeout ||
      a.primary_conninfo != b.primary_conninfo || a.promote_command != b.promote_command ||
      a.repoint_command != b.repoint_command || a.fence_command != b.fence_command || a.rejoin_command != b.rejoin_command)
    return "failover";
  if (r.metrics_host != n.metrics_host || r.metrics_port != n.metrics_port) return "metrics";
  if (r.admin_host != n.admin_host || r.admin_port != n.admin_port || r.admin_token != n.admin_token) return "admin";
  if (r.tls.client != n.tls.client) return "tls.client";
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
