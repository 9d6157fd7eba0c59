#include "proxy/metrics.hpp"

#include <deque>
#include <iterator>
#include <limits>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace meridian::proxy {

namespace {

// Sums the workers' meters into metric families at each scrape.
class meter_collector : public prometheus::Collectable {
 public:
  explicit meter_collector(const metrics& m) : metrics_(m) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const auto nodes = metrics_.node_names();
    const auto& meters = metrics_.meters();
    std::deque<prometheus::MetricFamily> out;  // family() hands out references: they must stay valid
    auto family = [&](const char* name, const char* help, prometheus::MetricType type) -> prometheus::MetricFamily& {
      out.push_back(prometheus::MetricFamily{name, help, type, {}});
      return out.back();
    };
    auto sum = [&](auto&& value) {
      std::int64_t total = 0;
      for (const auto& m : meters) total += value(*m);
      return static_cast<double>(total);
    };
    auto gauge_of = [](double v) {
      prometheus::ClientMetric m;
      m.gauge.value = v;
      return m;
    };
    auto gauge = [](prometheus::ClientMetric::Label a, std::optional<prometheus::ClientMetric::Label> b, double v) {
      prometheus::ClientMetric m;
      m.label.push_back(std::move(a));
      if (b) m.label.push_back(std::move(*b));
      m.gauge.value = v;
      return m;
    };
    auto& servers = family("meridian_pool_servers", "Server connections in the pools, by node and state (used: checked out or connecting)",
                           prometheus::MetricType::Gauge);
    auto& waiting = family("meridian_pool_clients_waiting", "Clients waiting for a server connection, by node",
                           prometheus::MetricType::Gauge);
    auto& capacity = family("meridian_pool_capacity", "The pools' maximum number of server connections, by node",
                            prometheus::MetricType::Gauge);
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      if (nodes[n].empty()) continue;  // removed
      const prometheus::ClientMetric::Label node{"node", nodes[n]};
      servers.metric.push_back(gauge(node, prometheus::ClientMetric::Label{"state", "used"},
                                     sum([n](const worker_meter& m) { return m.pools[n].used.get(); })));
      servers.metric.push_back(gauge(node, prometheus::ClientMetric::Label{"state", "idle"},
                                     sum([n](const worker_meter& m) { return m.pools[n].idle.get(); })));
      waiting.metric.push_back(gauge(node, std::nullopt, sum([n](const worker_meter& m) { return m.pools[n].waiting.get(); })));
      capacity.metric.push_back(
          gauge(node, std::nullopt, sum([n](const worker_meter& m) { return m.pools[n].capacity.get(); })));
    }
    histograms(nodes, meters, family("meridian_pool_wait_seconds", "Time to get a server connection from the pool, by node",
                      prometheus::MetricType::Histogram),
               [](const worker_meter& m, std::size_t n) -> const latency_histogram& { return m.pools[n].wait; });
    histograms(nodes, meters, family("meridian_query_duration_seconds",
                      "From a client's statement (or extended-protocol batch) being sent to its ReadyForQuery, by node",
                      prometheus::MetricType::Histogram),
               [](const worker_meter& m, std::size_t n) -> const latency_histogram& { return m.queries[n]; });
    histograms(nodes, meters, family("meridian_transaction_duration_seconds",
                      "From a transaction's first statement being sent to the server being idle again, by node",
                      prometheus::MetricType::Histogram),
               [](const worker_meter& m, std::size_t n) -> const latency_histogram& { return m.transactions[n]; });

    auto& errors = family("meridian_errors_total",
                          "Errors sent to clients, by SQLSTATE class and origin (the server, or Meridian itself)",
                          prometheus::MetricType::Counter);
    for (auto origin : {error_meter::origin::server, error_meter::origin::meridian}) {
      for (std::size_t cls = 0; cls < error_meter::classes; ++cls) {
        const auto v = sum([&](const worker_meter& m) { return m.errors.get(origin, cls); });
        if (v == 0) continue;
        char name[3];
        prometheus::ClientMetric m;
        m.label = {{"class", std::string(error_meter::class_name(cls, name))},
                   {"origin", origin == error_meter::origin::server ? "server" : "meridian"}};
        m.counter.value = v;
        errors.metric.push_back(std::move(m));
      }
    }
    auto& statements = family("meridian_statements_total",
                              "Statements forwarded, by target node and by class (read: may run on a replica)",
                              prometheus::MetricType::Counter);
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      if (nodes[n].empty()) continue;
      for (bool read : {true, false}) {
        prometheus::ClientMetric m;
        m.label = {{"class", read ? "read" : "write"}, {"node", nodes[n]}};
        m.counter.value = sum([&](const worker_meter& w) { return w.statements[worker_meter::statement_slot(n, read)].get(); });
        statements.metric.push_back(std::move(m));
      }
    }
    auto& reads = family("meridian_reads_routed_total",
                         "Transactions that could read from a replica, by the node chosen to serve them",
                         prometheus::MetricType::Counter);
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      if (nodes[n].empty()) continue;
      prometheus::ClientMetric m;
      m.label = {{"node", nodes[n]}};
      m.counter.value = sum([n](const worker_meter& w) { return w.reads_routed[n].get(); });
      reads.metric.push_back(std::move(m));
    }
    auto& cache = family("meridian_classification_cache_lookups_total",
                         "Statement classifications, by whether the cache had the statement's shape",
                         prometheus::MetricType::Counter);
    for (bool hit : {true, false}) {
      prometheus::ClientMetric m;
      m.label = {{"result", hit ? "hit" : "miss"}};
      m.counter.value = sum([hit](const worker_meter& w) { return (hit ? w.cache_hits : w.cache_misses).get(); });
      cache.metric.push_back(std::move(m));
    }
    family("meridian_clients_held",
           "Clients whose work waits for a primary while a failover replaces it (failover.hold_timeout), beside "
           "meridian_pool_clients_waiting",
           prometheus::MetricType::Gauge)
        .metric.push_back(gauge_of(sum([](const worker_meter& w) { return w.held.get(); })));
    auto& holds = family("meridian_held_total",
                         "Work held for a failover, by how the hold ended: served (it went on to a primary) or refused "
                         "(hold_timeout passed, or failover.hold_clients were already held)",
                         prometheus::MetricType::Counter);
    for (bool served : {true, false}) {
      prometheus::ClientMetric m;
      m.label = {{"outcome", served ? "served" : "refused"}};
      m.counter.value = sum([served](const worker_meter& w) { return (served ? w.held_served : w.held_refused).get(); });
      holds.metric.push_back(std::move(m));
    }
    family("meridian_reads_retried_total",
           "Reads in flight on a server connection that was lost, nothing of their answer sent yet, run again on "
           "another connection (routed anew)",
           prometheus::MetricType::Counter)
        .metric.push_back([&] {
          prometheus::ClientMetric m;
          m.counter.value = sum([](const worker_meter& w) { return w.reads_retried.get(); });
          return m;
        }());
    family("meridian_held_wait_seconds", "How long held work waited before it went on to a primary",
           prometheus::MetricType::Histogram)
        .metric.push_back(histogram(meters, {}, [](const worker_meter& w) -> const latency_histogram& { return w.held_wait; }));
    if (const auto* a = metrics_.authority()) {
      // Read at the scrape: the deadline passes with no event that would set a gauge.
      const auto g = a->current();
      const auto now = std::chrono::steady_clock::now();
      const bool held = now < g.until;
      prometheus::ClientMetric m;
      m.gauge.value = held ? 1 : 0;
      family("meridian_write_authority",
             "1 while this Meridian may send work that may write to the primary (the etcd majority confirmed its "
             "topology epoch within lease_ttl - authority_margin)",
             prometheus::MetricType::Gauge)
          .metric.push_back(m);
      m.gauge.value = held && g.until != std::chrono::steady_clock::time_point::max()
                          ? std::chrono::duration<double>(g.until - now).count()
                          : 0;
      family("meridian_write_authority_remaining_seconds",
             "Until write authority lapses unless a renewal is confirmed (0 without it, or without etcd)",
             prometheus::MetricType::Gauge)
          .metric.push_back(m);
    }
    return {std::make_move_iterator(out.begin()), std::make_move_iterator(out.end())};
  }

 private:
  template <typename Pick>
  static void histograms(const std::vector<std::string>& nodes, const std::vector<std::unique_ptr<worker_meter>>& meters,
                         prometheus::MetricFamily& f, Pick pick) {
    for (std::size_t n = 0; n < nodes.size(); ++n) {
      if (nodes[n].empty()) continue;
      f.metric.push_back(histogram(meters, {{"node", nodes[n]}}, [&](const worker_meter& w) -> const latency_histogram& {
        return pick(w, n);
      }));
    }
  }

  // The workers' histograms summed into one metric.
  template <typename Pick>
  static prometheus::ClientMetric histogram(const std::vector<std::unique_ptr<worker_meter>>& meters,
                                            std::vector<prometheus::ClientMetric::Label> labels, Pick pick) {
    prometheus::ClientMetric m;
    m.label = std::move(labels);
    std::uint64_t cumulative = 0;
    double sum_ns = 0;
    for (std::size_t b = 0; b <= latency_histogram::bounds.size(); ++b) {
      for (const auto& w : meters) cumulative += static_cast<std::uint64_t>(pick(*w).count_in(b));
      prometheus::ClientMetric::Bucket bucket;
      bucket.cumulative_count = cumulative;
      bucket.upper_bound = b < latency_histogram::bounds.size() ? latency_histogram::bounds[b]
                                                                : std::numeric_limits<double>::infinity();
      m.histogram.bucket.push_back(bucket);
    }
    for (const auto& w : meters) sum_ns += static_cast<double>(pick(*w).sum_ns());
    m.histogram.sample_count = cumulative;
    m.histogram.sample_sum = sum_ns / 1e9;
    return m;
  }

  const metrics& metrics_;
};

}  // namespace

// The endpoint first: a scrape in progress must not find the rest half destroyed.
metrics::~metrics() { exposer_.reset(); }

metrics::metrics(const routing::topology& topology, unsigned workers, const std::string& region)
    : registry_(std::make_shared<prometheus::Registry>()) {
  for (unsigned i = 0; i < workers; ++i) meters_.push_back(std::make_unique<worker_meter>(routing::max_nodes));
  meter_collector_ = std::make_shared<meter_collector>(*this);
  prometheus::BuildGauge()
      .Name("meridian_info")
      .Help("Always 1: this Meridian's region and version as labels, to join or group other series by")
      .Register(*registry_)
      .Add({{"region", region}, {"version", MERIDIAN_VERSION}})
      .Set(1);
  epoch_ = &prometheus::BuildGauge()
                .Name("meridian_topology_epoch")
                .Help("Epoch of the topology in force (rises with every change of roles)")
                .Register(*registry_)
                .Add({});
  primary_changes_ = &prometheus::BuildCounter()
                          .Name("meridian_primary_changes_total")
                          .Help("Topology epochs this Meridian applied that named a different primary (failover, "
                                "switchover or operator promotion)")
                          .Register(*registry_)
                          .Add({});
  skips_family_ = &prometheus::BuildCounter()
                       .Name("meridian_replica_skips_total")
                       .Help("Times a replica refused a connection and reads went elsewhere")
                       .Register(*registry_);
  auto gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
  };
  node_families_ = {
      gauge("meridian_node_up", "1 when the node monitor's last probe of the node succeeded"),
      gauge("meridian_node_primary", "1 when the node last reported it is not in recovery"),
      gauge("meridian_node_readable", "1 when the replica may serve reads (healthy, within its lag limits)"),
      gauge("meridian_node_lag_bytes", "Replication lag of the replica in bytes of WAL"),
      gauge("meridian_node_lag_seconds", "Replication lag of the replica: how long ago the primary was where it is"),
      gauge("meridian_node_probe_latency_seconds", "Smoothed round trip of the node monitor's probe"),
      gauge("meridian_node_timeline", "The node's timeline"),
      gauge("meridian_node_max_lag_seconds", "The replica's lag limit: past it, reads go elsewhere"),
      gauge("meridian_node_max_lag_bytes", "The replica's lag limit in bytes of WAL (0: no byte limit)"),
  };
  auto& ryw = prometheus::BuildCounter()
                  .Name("meridian_read_your_writes_waits_total")
                  .Help("Reads that waited for a replica to replay the client's last commit, by outcome")
                  .Register(*registry_);
  ryw_caught_up_ = &ryw.Add({{"outcome", "replica"}});
  ryw_gave_up_ = &ryw.Add({{"outcome", "primary"}});
  node_health(topology);
  clients_ = &prometheus::BuildGauge()
                  .Name("meridian_client_connections")
                  .Help("Client connections currently open")
                  .Register(*registry_)
                  .Add({});
  tls_handshakes_ = &prometheus::BuildCounter()
                         .Name("meridian_client_tls_handshakes_total")
                         .Help("TLS handshakes completed with clients")
                         .Register(*registry_)
                         .Add({});
  authority_lapses_ = &prometheus::BuildCounter()
                           .Name("meridian_write_authority_lapses_total")
                           .Help("Times this Meridian's write authority lapsed: no renewal confirmed by the etcd "
                                 "majority in time (a new epoch replacing the old one is not counted)")
                           .Register(*registry_)
                           .Add({});
  window_bytes_ = &prometheus::BuildGauge()
                       .Name("meridian_failover_window_bytes")
                       .Help("The last failover this Meridian led: WAL the lost primary was last seen to have beyond "
                             "the replica promoted (acknowledged writes in it may be lost under asynchronous replication)")
                       .Register(*registry_)
                       .Add({});
  window_seconds_ = &prometheus::BuildGauge()
                         .Name("meridian_failover_window_seconds")
                         .Help("The last failover this Meridian led: the promoted replica's lag as last measured (NaN: unknown)")
                         .Register(*registry_)
                         .Add({});
  blind_seconds_ = &prometheus::BuildGauge()
                        .Name("meridian_failover_blind_seconds")
                        .Help("The last failover this Meridian led: up to how long the lost primary may have acknowledged "
                              "writes no replica received, from when the majority lost sight of it until its write "
                              "authority had ended everywhere (NaN: unknown)")
                        .Register(*registry_)
                        .Add({});
  auto candidate_gauge = [&](const char* name, const char* help) {
    return &prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
  };
  candidate_families_ = {
      candidate_gauge("meridian_failover_candidate_distance_seconds",
                      "The last failover this Meridian led: each replica weighed, by rank of nearness, and its "
                      "round trip to the lost primary as measured before (NaN: unknown)"),
      candidate_gauge("meridian_failover_candidate_behind_bytes",
                      "The last failover this Meridian led: WAL the lost primary was last seen to have beyond each "
                      "replica weighed"),
      candidate_gauge("meridian_failover_candidate_chosen",
                      "The last failover this Meridian led: 1 for the replica chosen for promotion, 0 for the others"),
  };
  window_bytes_->Set(std::numeric_limits<double>::quiet_NaN());  // none led yet
  window_seconds_->Set(std::numeric_limits<double>::quiet_NaN());
  blind_seconds_->Set(std::numeric_limits<double>::quiet_NaN());
  auto& fences = prometheus::BuildCounter()
                     .Name("meridian_self_fences_total")
                     .Help("Fences of this region's primary after this Meridian lost write authority (fenced), and "
                           "such fences this Meridian lifted as the leader holding authority (lifted)")
                     .Register(*registry_);
  self_fences_ = &fences.Add({{"action", "fenced"}});
  fence_lifts_ = &fences.Add({{"action", "lifted"}});
}

void metrics::failover_decision(const failover::candidate_choice& choice, std::optional<std::int64_t> blind_ms) {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  for (std::size_t i = 0; i < candidate_series_.size(); ++i)
    candidate_families_[i % candidate_families_.size()]->Remove(candidate_series_[i]);
  candidate_series_.clear();
  for (const auto& c : choice.candidates) {
    const std::map<std::string, std::string> labels{{"node", c.node}, {"rank", std::to_string(c.rank)}};
    auto* distance = &candidate_families_[0]->Add(labels);
    auto* behind = &candidate_families_[1]->Add(labels);
    auto* chosen = &candidate_families_[2]->Add(labels);
    distance->Set(c.distance_us ? static_cast<double>(*c.distance_us) / 1e6 : nan);
    behind->Set(static_cast<double>(c.behind_bytes));
    chosen->Set(choice.node == c.node ? 1 : 0);
    candidate_series_.insert(candidate_series_.end(), {distance, behind, chosen});
  }
  window_bytes_->Set(static_cast<double>(choice.loss_bytes));
  window_seconds_->Set(choice.window_ms ? static_cast<double>(*choice.window_ms) / 1000.0 : nan);
  blind_seconds_->Set(blind_ms ? static_cast<double>(*blind_ms) / 1000.0 : std::numeric_limits<double>::quiet_NaN());
}

std::vector<std::string> metrics::node_names() const {
  std::lock_guard lock(nodes_mutex_);
  return names_;
}

std::int64_t metrics::servers_in_use(const std::string& node) const {
  const auto names = node_names();
  std::int64_t used = 0;
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == node)
      for (const auto& m : meters_) used += m->pools[i].used.get();
  return used;
}

void metrics::track_nodes(const routing::topology& topology) {
  const auto count = std::min(topology.nodes.size(), routing::max_nodes);
  names_.resize(std::max(names_.size(), count));
  gauges_.resize(names_.size());
  for (std::size_t i = 0; i < count; ++i) {
    const auto& n = topology.nodes[i];
    auto& g = gauges_[i];
    if (!replica_skips_[i].load(std::memory_order_relaxed)) {
      // First seen: its counter, kept for Meridian's lifetime (a worker may be counting on it),
      // published to the workers last.
      replica_skips_[i].store(&skips_family_->Add({{"node", n.name}}), std::memory_order_release);
    }
    const bool wanted = !n.removed;
    if (!g.series.empty() && (!wanted || g.region != n.region)) {
      // Removed (or moved to another region label): its gauges go, so that nothing alerts on them.
      for (std::size_t f = 0; f < node_families_.size(); ++f) node_families_[f]->Remove(g.series[f]);
      g.series.clear();
    }
    if (wanted && g.series.empty()) {
      const prometheus::Labels l{{"node", n.name}, {"region", n.region}};
      for (auto* f : node_families_) g.series.push_back(&f->Add(l));
      g.region = n.region;
    }
    names_[i] = wanted ? n.name : std::string();
    if (wanted) {
      g.series[g_max_lag]->Set(std::chrono::duration<double>(n.max_lag).count());
      g.series[g_max_lag_bytes]->Set(static_cast<double>(n.max_lag_bytes));
    }
  }
}

void metrics::node_health(const routing::topology& topology) {
  std::lock_guard lock(nodes_mutex_);
  if (topology.epoch > seen_epoch_) {
    const auto primary = topology.primary();
    if (seen_epoch_ != 0 && primary != seen_primary_) primary_changes_->Increment();
    seen_epoch_ = topology.epoch;
    seen_primary_ = primary;
    epoch_->Set(static_cast<double>(topology.epoch));
  }
  track_nodes(topology);
  for (std::size_t i = 0; i < gauges_.size() && i < topology.states.size(); ++i) {
    auto& g = gauges_[i].series;
    if (g.empty()) continue;
    const auto& h = topology.states[i].health;
    g[g_up]->Set(h.reachable ? 1 : 0);
    g[g_primary]->Set(h.probed ? (h.in_recovery ? 0 : 1) : (topology.states[i].role == routing::node_role::primary ? 1 : 0));
    g[g_readable]->Set(h.readable && topology.states[i].role == routing::node_role::replica ? 1 : 0);
    g[g_lag_bytes]->Set(h.lag ? static_cast<double>(h.lag->bytes) : 0);
    g[g_lag_seconds]->Set(h.lag ? std::chrono::duration<double>(h.lag->time).count() : 0);
    g[g_probe]->Set(std::chrono::duration<double>(h.probe_latency).count());
    g[g_timeline]->Set(h.timeline);
  }
}

void metrics::serve(const std::string& host, std::uint16_t port) {
  exposer_ = std::make_unique<prometheus::Exposer>(host + ":" + std::to_string(port));
  exposer_->RegisterCollectable(registry_);
  exposer_->RegisterCollectable(meter_collector_);
}

std::vector<std::vector<std::string>> metrics::rows() const {
  std::vector<std::vector<std::string>> out;
  auto number = [](double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  };
  auto families = registry_->Collect();
  for (auto& f : meter_collector_->Collect()) families.push_back(std::move(f));
  for (const auto& family : families) {
    for (const auto& m : family.metric) {
      std::string labels;
      for (const auto& l : m.label) labels += (labels.empty() ? "" : ",") + l.name + "=" + l.value;
      switch (family.type) {
        case prometheus::MetricType::Counter: out.push_back({family.name, labels, number(m.counter.value)}); break;
        case prometheus::MetricType::Gauge: out.push_back({family.name, labels, number(m.gauge.value)}); break;
        case prometheus::MetricType::Histogram:
          out.push_back({family.name + "_count", labels, std::to_string(m.histogram.sample_count)});
          out.push_back({family.name + "_sum", labels, number(m.histogram.sample_sum)});
          break;
        default: break;
      }
    }
  }
  return out;
}

}  // namespace meridian::proxy
