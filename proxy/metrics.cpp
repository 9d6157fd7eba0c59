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
  for (const auto& n : topology.nodes) {
    statements_.push_back(&statements.Add({{"node", n.name}, {"class", "read"}}));
    statements_.push_back(&statements.Add({{"node", n.name}, {"class", "write"}}));
    replica_skips_.push_back(&skips.Add({{"node", n.name}}));
  }
  clients_ = &prometheus::BuildGauge()
                  .Name("meridian_client_connections")
                  .Help("Client connections currently open")
                  .Register(*registry_)
                  .Add({});
}

void metrics::serve(const std::string& host, std::uint16_t port) {
  exposer_ = std::make_unique<prometheus::Exposer>(host + ":" + std::to_string(port));
  exposer_->RegisterCollectable(registry_);
}

}  // namespace meridian::proxy
