#pragma once
// Prometheus metrics (prometheus-cpp) and their HTTP endpoint. Counters are atomics: workers
// update them without locks; labels are bounded (node names and fixed classes, never SQL).
#include <memory>
#include <string>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

#include "routing/classifier.hpp"
#include "routing/topology.hpp"

namespace meridian::proxy {

class metrics {
 public:
  explicit metrics(const routing::topology& topology);
  metrics(const metrics&) = delete;
  metrics& operator=(const metrics&) = delete;

  // Starts the HTTP endpoint (GET /metrics). Throws when the address cannot be bound.
  void serve(const std::string& host, std::uint16_t port);

  // A statement forwarded to `node`, by what it may do.
  void statement(routing::node_id node, routing::target where) {
    auto i = std::size_t{node.value} * 2 + (where == routing::target::any ? 0 : 1);
    if (i < statements_.size()) statements_[i]->Increment();
  }
  void client_connected() { clients_->Increment(); }
  void client_disconnected() { clients_->Decrement(); }
  void replica_skipped(routing::node_id node) {
    if (node.value < replica_skips_.size()) replica_skips_[node.value]->Increment();
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::vector<prometheus::Counter*> statements_;  // [node * 2 + (read ? 0 : 1)]
  std::vector<prometheus::Counter*> replica_skips_;
  prometheus::Gauge* clients_ = nullptr;
};

}  // namespace meridian::proxy
