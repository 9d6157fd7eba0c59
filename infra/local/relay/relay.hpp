#pragma once
// A userspace TCP relay that stands for the wide-area network between simulated regions.
//
// Each region of the sandbox lives in its own network namespace; every service (PostgreSQL,
// Meridian, etcd) is reached from outside its region only through this relay, which listens on
// the service's address in the root namespace and forwards to the service inside its namespace.
// The relay knows the region a connection comes from by its source address, delays every byte by
// that pair of regions' one-way delay, and holds traffic on a cut link (a partition: nothing is
// reset, nothing is delivered, until the link heals). Connections from an unknown source (the
// host itself) count as local to the service's region.
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "infra/local/relay/network_rules.hpp"
#include "proxy/asio.hpp"

namespace meridian::relay {

namespace asio = proxy::asio;
using proxy::awaitable;
using proxy::tcp;

struct endpoint {
  std::string host;
  std::uint16_t port = 0;
};

struct service_config {
  std::string name;  // "<region>/<what>", e.g. "us-east-1/postgres"
  std::string region;
  std::vector<endpoint> listen;
  endpoint target;
};

struct delay_config {
  std::string a, b;
  std::chrono::milliseconds one_way{};
};

struct relay_config {
  std::string control_path;                         // unix socket for commands ("" for none)
  std::vector<std::string> regions;
  std::map<std::string, std::string> source_region;  // source IP address -> region
  std::vector<delay_config> delays;
  std::vector<service_config> services;
  std::size_t buffer_limit = 4u << 20;  // bytes in flight per direction before reading stops
};

// Loads the YAML file infra/local/sandbox writes; throws std::runtime_error with the reason.
relay_config load_relay_config(const std::string& path);

class connection;

class relay {
 public:
  // Binds every listener (throws on failure); serving starts with start().
  relay(asio::io_context& io, relay_config config);
  ~relay();
  relay(const relay&) = delete;
  relay& operator=(const relay&) = delete;

  void start();
  void stop();

  // An operator command (see network_rules::apply); wakes held traffic when links heal.
  std::string command(std::string_view line);

  const network_rules& rules() const { return rules_; }
  std::size_t open_connections() const { return open_; }

  // For connections.
  std::string region_of_source(const asio::ip::address& a) const;
  std::chrono::milliseconds delay(const std::string& from, const service_ref& to) const;
  bool blocked(const std::string& from, const service_ref& to) const { return rules_.blocked(from, to); }
  std::size_t buffer_limit() const { return config_.buffer_limit; }
  void opened() { ++open_; }
  void closed() { --open_; }

 private:
  struct listener {
    tcp::acceptor acceptor;
    const service_config* service;
  };
  awaitable<void> accept_loop(listener& l);
  awaitable<void> control_loop();
  awaitable<void> control_session(asio::local::stream_protocol::socket s);

  asio::io_context& io_;
  relay_config config_;
  network_rules rules_;
  std::vector<std::unique_ptr<listener>> listeners_;
  std::unique_ptr<asio::local::stream_protocol::acceptor> control_;
  // Every live connection, to wake them all when the rules change (one thread runs the relay).
  std::set<std::weak_ptr<connection>, std::owner_less<std::weak_ptr<connection>>> live_;
  bool stopping_ = false;
  std::size_t open_ = 0;
};

}  // namespace meridian::relay
