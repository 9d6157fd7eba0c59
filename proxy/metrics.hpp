#pragma once
// Prometheus metrics (prometheus-cpp) and their HTTP endpoint. Counters are atomics: workers
// update them without locks; labels are bounded (node names and fixed classes, never SQL).
// The data path's own figures (pools, latencies, errors, classification) live in per-worker
// meters (meters.hpp) and are summed into the exposition when scraped.
#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "proxy/meters.hpp"
#include "failover/cluster_state.hpp"
#include "routing/classifier.hpp"
#include "routing/topology.hpp"
#include "routing/write_authority.hpp"

namespace meridian::proxy {

class metrics {
 public:
  // `region`: where this Meridian runs.
  metrics(const routing::topology& topology, unsigned workers, const std::string& region);
  ~metrics();
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  // Starts the HTTP endpoint (GET /metrics). Throws when the address cannot be bound.
  void serve(const std::string& host, std::uint16_t port);

  // Worker `index`'s meter: only that worker's thread writes it.
  [[nodiscard]] worker_meter& worker(unsigned index) { return *meters_[index]; }

  void client_connected() { clients_->Increment(); }
  void client_disconnected() { clients_->Decrement(); }
  void tls_handshake() { tls_handshakes_->Increment(); }
  // Write authority: read at each scrape (held, time left); lapses counted as they happen.
  void watch_authority(const routing::write_authority& a) { authority_ = &a; }
  [[nodiscard]] const routing::write_authority* authority() const { return authority_; }
  void authority_lapsed() { authority_lapses_->Increment(); }
  // The last failover this Meridian led: every candidate weighed (its distance from the lost
  // primary, what it lacked, whether it was chosen) and the async window (unknown lag: NaN).
  // The monitor's thread.
  void failover_decision(const failover::candidate_choice& choice, std::optional<std::int64_t> blind_ms);
  // This Meridian fenced its region's primary after losing write authority, or (leading)
  // lifted such a fence.
  void self_fence(bool lifted) { (lifted ? fence_lifts_ : self_fences_)->Increment(); }
  void replica_skipped(routing::node_id node) { count(replica_skips_, node.value); }
  // Read-your-writes: a read waited for a replica to replay the client's commit, and where the
  // wait ended (the replica had it, or the read went to the primary).
  void read_your_writes_wait(bool replica_caught_up) { (replica_caught_up ? ryw_caught_up_ : ryw_gave_up_)->Increment(); }
  // What the node monitor published: per node role, health, lag and probe latency; the
  // topology epoch, and a primary change when the epoch brings one. Nodes added by a reload
  // get their series here, removed ones lose their gauges. Any thread (one at a time).
  void node_health(const routing::topology& topology);
  // Node names by id ("" for a removed node), and the workers' meters: what the collector sums.
  [[nodiscard]] std::vector<std::string> node_names() const;
  [[nodiscard]] const std::vector<std::unique_ptr<worker_meter>>& meters() const { return meters_; }
  // Server connections to the node named checked out or connecting, every worker's. Any thread.
  [[nodiscard]] std::int64_t servers_in_use(const std::string& node) const;
  // Every series as it would be scraped: name, labels (k=v,...), value. For SHOW STATS.
  [[nodiscard]] std::vector<std::vector<std::string>> rows() const;

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::vector<std::unique_ptr<worker_meter>> meters_;
  std::shared_ptr<prometheus::Collectable> meter_collector_;
  prometheus::Gauge* epoch_ = nullptr;
  prometheus::Counter* primary_changes_ = nullptr;
  std::uint64_t seen_epoch_ = 0;
  std::optional<routing::node_id> seen_primary_;
  // Per-node counters, set once a node is first seen (release) and read by workers (acquire).
  template <std::size_t N>
  static void count(std::array<std::atomic<prometheus::Counter*>, N>& counters, std::size_t i) {
    if (i < N)
      if (auto* c = counters[i].load(std::memory_order_acquire)) c->Increment();
  }
  std::array<std::atomic<prometheus::Counter*>, routing::max_nodes> replica_skips_{};
  prometheus::Family<prometheus::Counter>* skips_family_ = nullptr;
  prometheus::Counter* ryw_caught_up_ = nullptr;
  prometheus::Counter* ryw_gave_up_ = nullptr;
  prometheus::Gauge* clients_ = nullptr;
  prometheus::Counter* tls_handshakes_ = nullptr;
  prometheus::Counter* authority_lapses_ = nullptr;
  prometheus::Gauge* window_bytes_ = nullptr;
  prometheus::Gauge* blind_seconds_ = nullptr;
  prometheus::Counter* self_fences_ = nullptr;
  prometheus::Counter* fence_lifts_ = nullptr;
  prometheus::Gauge* window_seconds_ = nullptr;
  // The last decision's candidates: distance, bytes behind, chosen; series of the one before removed.
  std::array<prometheus::Family<prometheus::Gauge>*, 3> candidate_families_{};
  std::vector<prometheus::Gauge*> candidate_series_;
  const routing::write_authority* authority_ = nullptr;
  // Per-node gauges, in node_families_'s order.
  enum gauge_index { g_up, g_primary, g_readable, g_lag_bytes, g_lag_seconds, g_probe, g_timeline, g_max_lag, g_max_lag_bytes };
  std::vector<prometheus::Family<prometheus::Gauge>*> node_families_;
  struct node_series {
    std::vector<prometheus::Gauge*> series;  // empty: the node is removed
    std::string region;                      // the label they carry
  };
  void track_nodes(const routing::topology& topology);  // under nodes_mutex_
  mutable std::mutex nodes_mutex_;
  std::vector<node_series> gauges_;
  std::vector<std::string> names_;
};

}  // namespace meridian::proxy
