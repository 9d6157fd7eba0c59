#include "proxy/metrics.hpp"

namespace meridian::proxy {

metrics::metrics(const routing::topology& topology) : registry_(std::make_shared<prometheus::Registry>()) {
  auto& statements = prometheus::BuildCounter()
                         .Name("meridian_statements_total")
                         .Help("Statements forwarded, by target node and by class (read: may run on a replica)")
                         .Register(*registry_);
  auto& skips = prometheus::BuildCounter()
                    .Name("meridian_replica_skips_total")
                    .Help("Times a replica refused a connection and reads went elsewhere")
                    .Register(*registry_);
  auto& reads = prometheus::BuildCounter()
                    .Name("meridian_reads_routed_total")
                    .Help("Transactions that could read from a replica, by the node chosen to serve them")
                    .Register(*registry_);
  auto gauge = [&](const char* name, const char* help) -> prometheus::Family<prometheus::Gauge>& {
    return prometheus::BuildGauge().Name(name).Help(help).Register(*registry_);
  };
  auto& up = gauge("meridian_node_up", "1 when the node monitor's last probe of the node succeeded");
  auto& primary = gauge("meridian_node_primary", "1 when the node last reported it is not in recovery");
  auto& readable = gauge("meridian_node_readable", "1 when the replica may serve reads (healthy, within its lag limits)");
  auto& lag_bytes = gauge("meridian_node_lag_bytes", "Replication lag of the replica in bytes of WAL");
  auto& lag_seconds =
      gauge("meridian_node_lag_seconds", "Replication lag of the replica: how long ago the primary was where it is");
  auto& probe = gauge("meridian_node_probe_latency_seconds", "Smoothed round trip of the node monitor's probe");
  auto& timeline = gauge("meridian_node_timeline", "The node's timeline");
  for (const auto& n : topology.nodes) {
    statements_.push_back(&statements.Add({{"node", n.name}, {"class", "read"}}));
    statements_.push_back(&statements.Add({{"node", n.name}, {"class", "write"}}));
    replica_skips_.push_back(&skips.Add({{"node", n.name}}));
    reads_routed_.push_back(&reads.Add({{"node", n.name}}));
    const prometheus::Labels l{{"node", n.name}, {"region", n.region}};
    nodes_.push_back({&up.Add(l), &primary.Add(l), &readable.Add(l), &lag_bytes.Add(l), &lag_seconds.Add(l),
                      &probe.Add(l), &timeline.Add(l)});
  }
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
}

void metrics::node_health(const routing::topology& topology) {
  for (std::size_t i = 0; i < nodes_.size() && i < topology.states.size(); ++i) {
    const auto& h = topology.states[i].health;
    auto& g = nodes_[i];
    g.up->Set(h.reachable ? 1 : 0);
    g.primary->Set(h.probed ? (h.in_recovery ? 0 : 1) : (topology.states[i].role == routing::node_role::primary ? 1 : 0));
    g.readable->Set(h.readable && topology.states[i].role == routing::node_role::replica ? 1 : 0);
    g.lag_bytes->Set(h.lag ? static_cast<double>(h.lag->bytes) : 0);
    g.lag_seconds->Set(h.lag ? std::chrono::duration<double>(h.lag->time).count() : 0);
    g.probe_seconds->Set(std::chrono::duration<double>(h.probe_latency).count());
    g.timeline->Set(h.timeline);
  }
}

void metrics::serve(const std::string& host, std::uint16_t port) {
  exposer_ = std::make_unique<prometheus::Exposer>(host + ":" + std::to_string(port));
  exposer_->RegisterCollectable(registry_);
}

std::vector<std::vector<std::string>> metrics::rows() const {
  std::vector<std::vector<std::string>> out;
  auto number = [](double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  };
  for (const auto& family : registry_->Collect()) {
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
