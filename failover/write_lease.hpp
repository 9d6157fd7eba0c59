#pragma once
// This Meridian's write authority, renewed through etcd: the I/O around authority_clock.
// Every interval it sends a renewal, a read-only transaction that compares the topology
// record's revision with the one applied (a linearizable read, which etcd's leader answers only
// once a majority of members confirmed it leads) and that finds no ending of its epoch
// (<prefix>ending/<epoch>, written by a leader about to promote), and feeds the answer to the
// clock. After
// every event it publishes the clock's epoch and deadline to the sessions
// (routing::write_authority), logs what changed and tells the coordinator through on_change.
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "failover/authority_clock.hpp"
#include "failover/etcd_client.hpp"
#include "routing/write_authority.hpp"

namespace meridian::failover {

struct write_lease_settings {
  std::string topology_key;  // <prefix>topology
  std::string ending_key;    // <prefix>ending/: + the epoch, while a leader ends it
  std::chrono::seconds ttl{3};
  std::chrono::milliseconds margin{500};
  std::chrono::milliseconds interval{250};
};

class write_lease {
 public:
  using clock = std::chrono::steady_clock;

  // `etcd` should be a client of its own with a timeout well under ttl − margin, so that one
  // renewal hanging in a partition does not hold up the next.
  write_lease(etcd_client& etcd, write_lease_settings settings, routing::write_authority& authority);

  // The topology record applied: its epoch, primary and etcd mod revision.
  void follow(std::uint64_t epoch, const std::string& primary, std::int64_t revision);
  // Called after a change of what the sessions may do, with the epoch and its primary.
  using listener = std::function<void(authority_clock::change, std::uint64_t epoch, const std::string& primary)>;
  void on_change(listener f) { on_change_ = std::move(f); }

  // Renews until the executor stops; watches the deadline alongside.
  awaitable<void> run();

  [[nodiscard]] const authority_clock& state() const { return clock_; }
  [[nodiscard]] const std::string& primary() const { return primary_; }

 private:
  awaitable<void> renew_loop();
  awaitable<void> watch_deadline();
  awaitable<void> pause(clock::duration d);
  // Publishes the clock's state and reports a change.
  void publish(authority_clock::change c, clock::time_point now);

  etcd_client& etcd_;
  write_lease_settings settings_;
  routing::write_authority& authority_;
  authority_clock clock_;
  std::string primary_;
  listener on_change_;
  std::uint64_t told_ending_ = 0;  // the epoch whose ending was last logged
};

}  // namespace meridian::failover
