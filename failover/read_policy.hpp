#pragma once
// Which replicas may serve reads, and in what order, from what the node monitor saw of every
// node. Pure: the monitor calls it after each probe and publishes the topology it fills in.
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "routing/topology.hpp"

namespace meridian::failover {

struct read_policy_settings {
  std::string region;  // this Meridian's region: its replicas come first
  // Tie-break among replicas at about the same latency (node ids, most preferred first);
  // replicas not listed follow in configuration order.
  std::vector<routing::node_id> preference;
  // A replica excluded for lag serves reads again once its lag is at most this fraction of
  // its limits, so a replica hovering at its limit does not flap in and out.
  double readmit_ratio = 0.5;
};

// Latencies within the same bucket count as equal: under 1 ms is one bucket, then buckets a
// quarter of an octave (about 19 %) wide.
[[nodiscard]] int latency_bucket(std::chrono::microseconds latency);

class read_policy {
 public:
  explicit read_policy(read_policy_settings settings);

  // Sets health.readable and health.problem of every node and fills topo.read_order.
  // Keeps, between calls, which replicas are excluded for lag (the hysteresis).
  void apply(routing::topology& topo);
  // New settings (reload); which replicas are excluded for lag is kept.
  void set_settings(read_policy_settings settings) { settings_ = std::move(settings); }

 private:
  // Why `n` may not serve reads at all (empty when it may), lag aside.
  [[nodiscard]] std::string unusable(const routing::topology& topo, routing::node_id n) const;
  // Applies the lag limits with hysteresis; false when the lag excludes the replica.
  bool within_lag(const routing::node& n, const routing::node_health& h, std::string& problem);
  [[nodiscard]] std::size_t preference_rank(routing::node_id n) const;

  read_policy_settings settings_;
  std::vector<bool> lag_excluded_;  // by node id
};

}  // namespace meridian::failover
