#pragma once
// This Meridian's write authority, renewed through etcd: the I/O around authority_clock.
// Every interval it sends a renewal, a read-only transaction that compares the topology
// record's revision with the one applied (a linearizable read, which etcd's leader answers only
// once a majority of members confirmed it leads) and that finds no ending of its epoch
// (<prefix>ending/<epoch>, written by a leader about to promote), and feeds the answer to the
// clock. After every event it publishes the clock's epoch and deadline to the sessions
// (routing::write_authority), logs what changed and tells the coordinator through on_change.
//
// Releases, so that a leader need not wait out every grant: the first renewal confirmed in an
// epoch also registers this Meridian as a holder (<prefix>authority/<epoch>/holder/<token>, in
// the same transaction, so no Meridian holds authority unregistered). Told of the ending, once
// nothing of this Meridian is in flight on the old primary (`quiet`, seen twice half an interval
// apart), it writes <prefix>authority/<epoch>/released/<ending's create revision>/<token>, only
// while that very ending
// stands (an ending given up and begun again needs releases anew). A leader that finds every
// holder released promotes without waiting for the grants to run out (coordinator).
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
  // <prefix>authority/: under <epoch>/, holder/<token> once authority was held, and
  // released/<ending's create revision>/<token> once released (see holder_key, release_key).
  std::string authority_key;
  std::string token;         // this process among every Meridian (id and a random part)
  // Whether no work of this Meridian is in flight on `primary` (no server connection to it in
  // use); unset: never released, the leader waits the grants out.
  std::function<bool(const std::string& primary)> quiet;
};

// Key helpers shared with the leader: everything of an epoch lives under its key.
[[nodiscard]] std::string authority_epoch_key(const std::string& prefix, std::uint64_t epoch);
[[nodiscard]] std::string holder_key(const std::string& prefix, std::uint64_t epoch, const std::string& token = {});
[[nodiscard]] std::string release_key(const std::string& prefix, std::uint64_t epoch, std::int64_t ending_revision,
                                      const std::string& token = {});

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
  // Told of the ending (its create revision): releases once quiet.
  awaitable<void> release(std::uint64_t epoch, std::int64_t ending_revision, clock::time_point now);

  etcd_client& etcd_;
  write_lease_settings settings_;
  routing::write_authority& authority_;
  authority_clock clock_;
  std::string primary_;
  listener on_change_;
  std::uint64_t told_ending_ = 0;  // the epoch whose ending was last logged
  asio::steady_timer* renew_wait_ = nullptr;  // the renewal loop's pause, while it pauses
  std::uint64_t registered_ = 0;   // the epoch this Meridian is registered as a holder of
  // The ending released (epoch, create revision), and when quiet was first seen for it.
  std::uint64_t released_epoch_ = 0;
  std::int64_t released_revision_ = 0;
  std::uint64_t quiet_epoch_ = 0;
  std::int64_t quiet_revision_ = 0;
  clock::time_point quiet_since_{};
};

}  // namespace meridian::failover
