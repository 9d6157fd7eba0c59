#include "failover/read_policy.hpp"

#include <algorithm>
#include <cmath>

#include <spdlog/spdlog.h>

namespace meridian::failover {

using routing::node_role;

int latency_bucket(std::chrono::microseconds latency) {
  if (latency.count() < 1000) return 0;
  return 1 + static_cast<int>(std::floor(4.0 * std::log2(static_cast<double>(latency.count()) / 1000.0)));
}

read_policy::read_policy(read_policy_settings settings) : settings_(std::move(settings)) {}

std::size_t read_policy::preference_rank(routing::node_id n) const {
  auto it = std::find(settings_.preference.begin(), settings_.preference.end(), n);
  if (it != settings_.preference.end()) return static_cast<std::size_t>(it - settings_.preference.begin());
  return settings_.preference.size() + n.value;
}

std::string read_policy::unusable(const routing::topology& topo, routing::node_id id) const {
  const auto& h = topo.state(id).health;
  if (!h.probed) return "not probed yet";
  if (!h.reachable) return h.problem.empty() ? "unreachable" : h.problem;
  if (!h.in_recovery) return "not in recovery (promoted outside Meridian?)";
  auto primary = topo.primary();
  if (!primary) return {};
  const auto& p = topo.state(*primary).health;
  if (!p.probed || !p.reachable || p.in_recovery) return {};  // nothing current to compare with
  if (h.system_id != p.system_id)
    return "system identifier " + std::to_string(h.system_id) + " differs from the primary's " +
           std::to_string(p.system_id);
  if (h.timeline < p.timeline)
    return "on timeline " + std::to_string(h.timeline) + ", the primary is on " + std::to_string(p.timeline);
  return {};
}

bool read_policy::within_lag(const routing::node& n, const routing::node_health& h, std::string& problem) {
  if (!h.lag) return true;  // the primary's position is not known yet: lag cannot be judged
  const auto& lag = *h.lag;
  // Judged on the lag the replica certainly has: the interpolated estimate can be a whole
  // sampling interval too high (a write after an idle spell), which would exclude a replica
  // that is milliseconds behind whenever the monitor's interval is near its limit.
  auto over = [&](double ratio) {
    const auto limit = std::chrono::duration<double, std::milli>(n.max_lag) * ratio;
    if (std::chrono::duration<double, std::milli>(lag.at_least) > limit) return true;
    return n.max_lag_bytes > 0 && static_cast<double>(lag.bytes) > static_cast<double>(n.max_lag_bytes) * ratio;
  };
  bool excluded = lag_excluded_[n.id.value];
  if (!excluded && over(1.0)) {
    excluded = true;
  } else if (excluded && !over(settings_.readmit_ratio)) {
    excluded = false;
  }
  lag_excluded_[n.id.value] = excluded;
  if (excluded) {
    problem = "lag at least " + std::to_string(lag.at_least.count()) + " ms (about " + std::to_string(lag.time.count()) +
              " ms) / " + std::to_string(lag.bytes) + " bytes over its limit " +
              std::to_string(n.max_lag.count()) + " ms" +
              (n.max_lag_bytes > 0 ? " / " + std::to_string(n.max_lag_bytes) + " bytes" : std::string()) +
              (over(1.0) ? "" : " (readmitted below " + std::to_string(static_cast<int>(settings_.readmit_ratio * 100)) +
                                    " % of it)");
  }
  return !excluded;
}

void read_policy::apply(routing::topology& topo) {
  lag_excluded_.resize(topo.nodes.size(), false);
  for (const auto& n : topo.nodes) {
    auto& h = topo.states[n.id.value].health;
    const bool was_readable = h.readable;
    const std::string was_problem = h.problem;
    if (topo.state(n.id).role != node_role::replica) {
      h.readable = false;
      if (h.reachable) h.problem.clear();
      continue;
    }
    std::string problem = unusable(topo, n.id);
    bool readable = problem.empty() && within_lag(n, h, problem);
    h.readable = readable;
    h.problem = std::move(problem);
    if (readable != was_readable && h.probed) {
      if (readable) {
        spdlog::info("replica {} serves reads", n.name);
      } else {
        spdlog::warn("replica {} serves no reads: {}", n.name, h.problem);
      }
    } else if (!readable && h.problem != was_problem && h.probed) {
      spdlog::debug("replica {} still serves no reads: {}", n.name, h.problem);
    }
  }

  // Local replicas, the local primary, remote replicas by latency: see topology::read_order.
  topo.read_order.clear();
  for (const auto& n : topo.nodes) {
    const auto role = topo.state(n.id).role;
    if (role == node_role::replica || (role == node_role::primary && n.region == settings_.region))
      topo.read_order.push_back(n.id);
  }
  auto rank = [&](routing::node_id id) {
    const bool local = topo.at(id).region == settings_.region;
    const bool replica = topo.state(id).role == node_role::replica;
    return local ? (replica ? 0 : 1) : 2;
  };
  std::stable_sort(topo.read_order.begin(), topo.read_order.end(), [&](routing::node_id a, routing::node_id b) {
    if (rank(a) != rank(b)) return rank(a) < rank(b);
    if (rank(a) == 2) {
      const int ba = latency_bucket(topo.state(a).health.probe_latency);
      const int bb = latency_bucket(topo.state(b).health.probe_latency);
      if (ba != bb) return ba < bb;
    }
    return preference_rank(a) < preference_rank(b);
  });
}

}  // namespace meridian::failover
