#pragma once
// Leader election among the regional Meridians with an etcd lease: whoever creates the leader
// key (bound to its lease) leads until the lease is gone; the others watch the key and
// campaign again when it is deleted. No consensus of Meridian's own: etcd decides.
#include <chrono>
#include <functional>
#include <string>

#include "failover/etcd_client.hpp"

namespace meridian::failover {

struct election_settings {
  std::string key;  // e.g. /meridian/<cluster>/leader
  std::string id;   // this candidate, e.g. its region
  std::chrono::seconds ttl{3};
};

class leader_election {
 public:
  using clock = std::chrono::steady_clock;
  // Called on the election's executor whenever leadership changes: whether this candidate
  // leads, and who does ("" when nobody is known to).
  using observer = std::function<void(bool leading, const std::string& leader)>;

  leader_election(etcd_client& etcd, election_settings settings, observer on_change);

  // Campaigns, leads and campaigns again, until stop().
  awaitable<void> run();
  // Gives up leadership (revokes the lease) and ends run().
  awaitable<void> stop();

  // Leading, and the lease renewed recently enough that etcd cannot have given the key to
  // another candidate yet: act as leader only while this holds.
  [[nodiscard]] bool leading(clock::time_point now = clock::now()) const;
  [[nodiscard]] const std::string& leader() const { return leader_; }

 private:
  awaitable<void> hold(std::int64_t lease);
  awaitable<void> pause(std::chrono::milliseconds d);
  void set(bool leading, const std::string& leader);

  etcd_client& etcd_;
  election_settings settings_;
  observer on_change_;
  bool leading_ = false;
  bool stopping_ = false;
  std::int64_t lease_ = 0;
  clock::time_point renewed_{};
  std::string leader_;
};

}  // namespace meridian::failover
