#pragma once
// What the regional Meridians share through etcd, and the decisions made from it. Pure: the
// topology record (epoch, primary, fenced nodes), each region's view of every node, the
// detection rule (a majority of regions) and the choice of the replica to promote.
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "routing/lag.hpp"
#include "routing/topology.hpp"

namespace meridian::failover {

// The authority on roles, stored in etcd and replaced with a higher epoch at every change.
struct topology_record {
  std::uint64_t epoch = 1;
  std::string primary;
  std::vector<std::string> fenced;  // old primaries: nothing is routed to them until they rejoin
  std::string reason;               // why the last change happened

  [[nodiscard]] std::string to_json() const;
  [[nodiscard]] static std::optional<topology_record> from_json(const std::string& text);
  bool operator==(const topology_record&) const = default;
};

// One Meridian's view of one node.
struct node_view {
  bool probed = false;
  bool reachable = false;
  std::int64_t unreachable_ms = 0;  // for how long it has been unreachable (0 when reachable)
  // Unreachable because its host refused the connection: nothing listens on its port (its
  // postmaster is gone), hard evidence unlike a timeout.
  bool refused = false;
  bool in_recovery = false;
  std::uint32_t timeline = 0;
  routing::lsn wal, receive, replay;
  std::optional<std::int64_t> lag_ms;  // replicas, as this region measures it
  std::uint64_t lag_bytes = 0;
  bool readable = false;               // serves reads here
  // The smoothed round trip of this region's probe of the node, as last measured while it
  // answered (kept while it does not): how far the node is from this region.
  std::optional<std::int64_t> rtt_us;
};

struct region_view {
  std::string region;
  std::uint64_t epoch = 0;  // of the topology the view was taken under
  bool paused = false;      // new transactions held there (a pause or a switchover)
  std::map<std::string, node_view> nodes;

  [[nodiscard]] std::string to_json() const;
  [[nodiscard]] static std::optional<region_view> from_json(const std::string& text);
};

// This Meridian's view, from the monitor's latest snapshot.
[[nodiscard]] region_view view_of(const routing::topology& topo, const std::string& region,
                                  std::chrono::steady_clock::time_point now);

// The primary is lost when more than half of all `regions` have a current view in which it
// has been unreachable for at least `detection`, or refused for at least `refused_detection`
// (a region whose Meridian is gone has no view and does not count for it). `why` says what was
// seen either way.
[[nodiscard]] bool primary_lost(const std::vector<region_view>& views, const std::string& primary, std::size_t regions,
                                std::chrono::milliseconds detection, std::string& why,
                                std::optional<std::chrono::milliseconds> refused_detection = std::nullopt);

// Whether every Meridian registered as holding write authority over an epoch (`holders`: their
// tokens) released it under the ending in force (`released`). No holder: nobody held it.
[[nodiscard]] bool every_holder_released(const std::vector<std::string>& holders, const std::vector<std::string>& released);

struct candidate_settings {
  // Replicas in order of preference. With `measured`, it only breaks ties between replicas at
  // about the same measured distance from the lost primary, and orders those no region could
  // measure (after the measured ones); otherwise it is the order of nearness.
  std::vector<std::string> order;
  // How far behind the most caught-up replica the nearest may be and still be promoted, once
  // it has caught up from it (0: the most caught up always wins, nearness breaking ties).
  std::uint64_t prefer_ahead_bytes = 0;
  std::uint64_t max_loss_bytes = 0;      // RPO guard; 0: none
  bool measured = true;
  // Each node's region: the distance of a replica from the lost primary is the round trip its
  // region's Meridian last measured to the primary, or else the primary's region's to it.
  std::map<std::string, std::string> regions;
};

// One replica as the candidate choice weighed it.
struct candidate_report {
  std::string node;
  std::size_t rank = 0;                // 1: the nearest to the lost primary (see candidate_settings)
  std::optional<std::int64_t> distance_us;  // its measured round trip to the lost primary
  routing::lsn position;               // WAL it received, as the best-informed view saw it
  std::uint64_t behind_bytes = 0;      // the failed primary's last seen WAL beyond it
  std::optional<std::int64_t> lag_ms;  // the least lag any view last measured for it
};

struct candidate_choice {
  std::optional<std::string> node;  // nullopt: none can be promoted
  bool blocked = false;             // one could, but the RPO guard holds: an operator decides
  std::uint64_t loss_bytes = 0;     // WAL the primary was seen to have beyond the candidate
  routing::lsn position;            // what the candidate has received
  // Replicas that received more than the candidate: their history forks from the new
  // timeline, so they cannot follow it without a rewind (failover.rejoin_command).
  std::vector<std::string> diverged;
  // The candidate lacks WAL that a farther replica received (no more than prefer_ahead): it
  // first streams the difference from that one (cascading replication) up to catch_up_to, then
  // is promoted, and nothing forks. If it cannot, that replica is promoted instead.
  std::optional<std::string> catch_up_from;
  routing::lsn catch_up_to;
  std::string reason;
  // Every replica that could be promoted, by rank; the failed primary's WAL as last seen. The
  // async window (what acknowledged writes a promotion may lose) is loss_bytes and, in time,
  // the chosen replica's lag as last measured.
  std::vector<candidate_report> candidates;
  routing::lsn primary_wal;
  std::optional<std::int64_t> window_ms;
};

// "eu-west-1 (rank 1, 80.4 ms from the primary, received 0/5F000060, 0 bytes behind the primary,
// lag 12 ms), ..." for logs.
[[nodiscard]] std::string describe(const std::vector<candidate_report>& candidates);

// The replicas (reachable, in recovery, as the views saw them) that received more WAL than
// `node`: promoting `node` forks their history.
[[nodiscard]] std::vector<std::string> ahead_of(const std::vector<region_view>& views,
                                                const std::vector<std::string>& replicas,
                                                const std::string& failed_primary, const std::string& node);

// Among the replicas that some view saw reachable and in recovery, the nearest to the lost
// primary (catching up first from the most caught up when that one is ahead by at most
// prefer_ahead_bytes) unless another is ahead of it by more (then the most caught up, the
// nearest among equals); blocked when it would lose more than max_loss_bytes of what the
// primary was seen to write. Nearness: see candidate_settings.
[[nodiscard]] candidate_choice choose_candidate(const std::vector<region_view>& views,
                                                const std::vector<std::string>& replicas,
                                                const std::string& failed_primary, const candidate_settings& settings);

}  // namespace meridian::failover
