#pragma once
// The console's data and actions over a running Meridian: SHOW POOLS, CLIENTS and SERVERS
// gathered from every worker on its own thread, SHOW NODES from the topology the workers use,
// SHOW TOPOLOGY from the coordinator (on its thread), SHOW STATS from the metrics, SHOW CONFIG
// from the configuration in force; PAUSE and RESUME through the coordinator (every region) or
// locally, RELOAD and SHUTDOWN as SIGHUP and SIGTERM do.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proxy/console.hpp"
#include "proxy/worker.hpp"

namespace meridian::failover {
class coordinator;
}

namespace meridian::proxy {

class server_console : public console_backend {
 public:
  struct hooks {
    std::function<tl::expected<std::string, std::string>()> reload;  // as SIGHUP
    std::function<void(bool)> pause_here;                              // this Meridian's workers
    std::function<void()> shutdown;                                    // as SIGTERM
  };
  // `coordinator` (may be null) runs on `coordinator_io`.
  server_console(std::vector<worker*> workers, shared_state& shared, failover::coordinator* coordinator,
                 asio::io_context* coordinator_io, hooks h);

  awaitable<table> show(console_command c) override;
  awaitable<tl::expected<std::string, std::string>> act(console_command c) override;

 private:
  awaitable<std::vector<std::vector<std::string>>> gather(console_command c);

  std::vector<worker*> workers_;
  shared_state& shared_;
  failover::coordinator* coordinator_;
  asio::io_context* coordinator_io_;
  hooks hooks_;
};

// SHOW CONFIG's rows: setting and value, secrets left out.
[[nodiscard]] std::vector<std::vector<std::string>> config_rows(const config& c);

}  // namespace meridian::proxy
