#pragma once
// Coordination of the regional Meridians, and failover. Runs on the node monitor's thread.
//
// With etcd: the topology record (epoch, primary, fenced nodes) lives at <prefix>topology and
// every Meridian applies each new epoch to its monitor, hence its routing; each Meridian
// publishes its view of every node at <prefix>views/<region>, bound to a lease so a dead
// Meridian's view expires; the Meridians elect a leader with a lease, and only the leader
// judges the primary lost (a majority of regions' views), promotes, publishes the next epoch,
// repoints the other replicas and fences the old primary. An intent record written before
// promoting lets a new leader finish a failover its predecessor started.
//
// Every Meridian also holds write authority over the epoch it follows only while the etcd
// majority keeps confirming that epoch's record (write_lease): past its deadline nothing that
// may write reaches the primary from here.
//
// Without etcd, one Meridian decides alone from its own view: for a single instance only.
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "failover/cluster_state.hpp"
#include "failover/election.hpp"
#include "failover/etcd_client.hpp"
#include "failover/node_admin.hpp"
#include "failover/node_monitor.hpp"
#include "failover/write_lease.hpp"
#include "routing/write_authority.hpp"

namespace meridian::failover {

struct coordinator_settings {
  std::string region;
  std::string id;  // this instance among several of a region (the election's candidate name)
  std::size_t regions = 1;              // regions whose Meridians take part: the majority is of these
  std::vector<std::string> etcd;        // host:port of etcd's members; empty: decide alone
  std::string prefix = "/meridian/default/";
  std::chrono::seconds lease_ttl{3};
  // Write authority ends this long before lease_ttl after the renewal that granted it: at
  // least the clock-rate drift over a TTL plus one round trip to etcd.
  std::chrono::milliseconds authority_margin{500};
  std::chrono::milliseconds interval{250};
  std::chrono::milliseconds detection{2000};
  std::chrono::milliseconds detection_refused{500};  // a majority's probes refused (cluster_state)
  // Whether no work of this Meridian is in flight on a node (no server connection to it in
  // use): this Meridian then releases write authority over an ending epoch (write_lease).
  std::function<bool(const std::string& node)> quiet;
  bool automatic = false;               // fail over without an operator (needs admin's login)
  candidate_settings candidates;
  admin_settings admin;
};

class coordinator {
 public:
  // `authority`: what the sessions read before sending work that may write to the primary
  // (granted forever without etcd).
  coordinator(coordinator_settings settings, node_monitor& monitor, std::string configured_primary,
              routing::write_authority& authority);
  coordinator(const coordinator&) = delete;
  coordinator& operator=(const coordinator&) = delete;

  // Starts on the monitor's thread (call after the monitor started).
  void start();

  // What an operator (meridianctl, through the admin API) sees and asks. Monitor's thread.
  // Status: this instance, the topology record, the leader, every region's view, the last
  // failover's record.
  awaitable<std::string> status_json();
  // Promotes `node` now (an operator's decision: the RPO guard does not apply). Refused while
  // the primary is reachable from a majority (a switchover is the way then). Carried out by
  // the leader: another Meridian hands it over through etcd and waits for the outcome.
  awaitable<tl::expected<std::string, std::string>> request_promote(const std::string& node);
  // Planned switchover to `node`: every region holds new transactions, the primary takes no new
  // writes and finishes the open ones, `node` replays the primary's final position and is
  // promoted, the new epoch is published, transactions resume. Clients see latency, not
  // errors; no committed write is lost. The old primary stays fenced (read-only) until rejoin.
  awaitable<tl::expected<std::string, std::string>> request_switchover(const std::string& node);
  // Brings a fenced node back as a replica of the primary (failover.rejoin_command, then
  // verified streaming) and publishes it as a replica in a new epoch.
  awaitable<tl::expected<std::string, std::string>> request_rejoin(const std::string& node);
  // Pauses or resumes new transactions in every region (through etcd; this one alone without);
  // returns once every region's view confirms it.
  awaitable<tl::expected<void, std::string>> request_pause(bool paused);
  // Called on the monitor's thread when the cluster-wide pause changes.
  void on_pause(std::function<void(bool)> handler) { on_pause_ = std::move(handler); }
  // Called on the monitor's thread when this Meridian's write authority changes (with etcd).
  void on_authority(write_lease::listener handler);
  // Called on the monitor's thread when this Meridian, leading, promotes a replica it chose:
  // the choice (every candidate weighed, the async window at promotion in bytes and as the
  // candidate's last measured lag), and up to how long the lost primary may have acknowledged
  // writes no replica received.
  using failover_listener = std::function<void(const candidate_choice& choice, std::optional<std::int64_t> blind_ms)>;
  void on_failover(failover_listener handler) { on_failover_ = std::move(handler); }
  // Called on the monitor's thread when this Meridian fenced its region's primary after losing
  // write authority (false), or lifted such a fence as the leader (true).
  void on_fence(std::function<void(bool lifted)> handler) { on_fence_ = std::move(handler); }

 private:
  using clock = std::chrono::steady_clock;

  awaitable<void> run();
  // Keeps `on_value` told of `key`'s value (nullptr: absent or deleted) as etcd changes it.
  awaitable<void> follow(const std::string& key, std::function<void(const etcd_kv*)> on_value);
  awaitable<void> publish_views();
  awaitable<void> lead();
  awaitable<std::vector<region_view>> collect_views();
  awaitable<void> fail_over(const std::vector<region_view>& views, const std::string& why,
                            std::optional<std::string> operator_choice = std::nullopt);
  awaitable<void> serve_requests();
  awaitable<tl::expected<std::string, std::string>> switch_over(const std::string& target);
  awaitable<tl::expected<std::string, std::string>> rejoin(const std::string& target);
  // Hands an operator's request to the leader (through etcd), and waits for the epoch it makes.
  awaitable<tl::expected<void, std::string>> ask_leader(const std::string& action, const std::string& target);
  awaitable<bool> epoch_moved_on(std::uint64_t epoch, std::chrono::milliseconds patience);
  awaitable<tl::expected<std::string, std::string>> await_epoch_after(std::uint64_t epoch, const std::string& target);
  [[nodiscard]] std::optional<std::string> promotable(const std::string& target) const;
  void set_paused(bool paused);
  struct failover_timeline {
    clock::time_point detected, ending, promoted, published;
    std::string from, to;
    std::uint32_t timeline = 0;
    std::string reason;
    std::string kind = "failover";  // or "switchover", "operator promote"
    std::string choice;             // why this candidate
    std::string caught_up_from;     // the replica it streamed what it lacked from, first
    // When a new leader finishes what a lost one began: who began it, and its figures.
    std::string begun_by;
    long long carried_promote_ms = -1, carried_publish_ms = -1;
    // The automatic choice: every candidate weighed (JSON array), and the async window.
    std::string candidates;
    long long window_bytes = -1, window_ms = -1;
    // Up to how long the old primary may have acknowledged writes unseen by any replica.
    long long blind_ms = -1;
    // From the ending until every holder of write authority had released it (-1: waited out).
    long long released_ms = -1;
    // The detection that applied: failover.detection, or detection_refused when refusals made
    // the loss (0: an operator's decision).
    long long detection_ms = 0;
  };
  // Repoints the other replicas, fences the old primary, records the outcome. The record says
  // "repointing" until then, so that a leader taking over finishes the job.
  awaitable<void> finish_failover(failover_timeline t, topology_record next);
  // A new leader: finishes the repointing of a failover whose leader was lost.
  awaitable<void> resume_unfinished();
  awaitable<bool> publish(const topology_record& next);
  // Ends write authority over the current epoch everywhere (<prefix>ending/<epoch>, written only
  // over the record applied): no renewal of it succeeds after the commit. True once committed,
  // now or earlier by this leader.
  awaitable<bool> end_epoch(const std::string& why);
  // The failover a leader recorded it would make (…/intent) after `epoch`: its candidate and
  // leader; none when the intent names another epoch or there is none.
  struct failover_intent {
    std::string candidate, leader;
  };
  awaitable<tl::expected<std::optional<failover_intent>, std::string>> next_epoch_intent(std::uint64_t epoch);
  // Takes the ending back (the primary is reachable again), unless a failover's intent names
  // the next epoch.
  awaitable<void> give_up_ending(const std::string& why);
  // A new leader: an ending its predecessor committed is its own, counted from now.
  awaitable<void> adopt_ending();
  // Alongside the failover (a candidate may first catch up, for seconds): watches until every
  // Meridian registered as holding write authority over the epoch being ended has released it
  // under this leader's ending (write_lease), then sets released_at_; gives up at `until`, or
  // when release_watch_ moves on from `generation`.
  awaitable<void> watch_releases(std::uint64_t generation, clock::time_point until);
  // What this Meridian's release waits for besides `quiet`: when `node` (the old primary) is in
  // its region, that it refuses connections or is fenced, so that no direct client writes to it
  // after a promotion either (guard_primary fences it).
  [[nodiscard]] bool may_release(const std::string& node) const;
  awaitable<void> fence_old_primaries();
  // Every Meridian: once its write authority over the epoch in force has been lost for
  // authority_margin, it fences the primary if that is in its region (node_admin::self_fence),
  // once per loss, so that direct clients and transactions already open cannot write either.
  awaitable<void> guard_primary();
  // The leader, holding write authority: lifts such a fence from the primary it reaches.
  awaitable<void> lift_fence();
  awaitable<void> record_status(const std::string& json);
  awaitable<void> pause(std::chrono::milliseconds d);
  awaitable<void> pause_until(clock::time_point t);
  [[nodiscard]] bool leading() const;
  [[nodiscard]] const routing::node* node(const std::string& name) const;
  void apply(const topology_record& r, std::int64_t revision);
  [[nodiscard]] std::string key(const std::string& name) const { return settings_.prefix + name; }

  coordinator_settings settings_;
  // The keys, spelled once (and held, not built inside co_await expressions).
  std::string topology_key_, views_key_, own_view_key_, intent_key_, status_key_, ending_prefix_;
  node_monitor& monitor_;
  std::string configured_primary_;
  std::unique_ptr<etcd_client> etcd_;
  std::unique_ptr<etcd_client> watch_etcd_;
  std::unique_ptr<etcd_client> election_etcd_;
  std::unique_ptr<leader_election> election_;
  routing::write_authority& authority_;
  std::unique_ptr<etcd_client> lease_etcd_;
  std::unique_ptr<write_lease> lease_;
  node_admin admin_;
  topology_record record_;
  std::int64_t record_revision_ = 0;  // etcd's mod revision of the record applied
  bool have_record_ = false;
  std::string last_reported_;         // the last detection message logged, to log changes only
  clock::time_point last_fence_attempt_{};
  std::set<std::string> fenced_;  // "<epoch>/<node>" fenced successfully
  std::string requests_key_, pause_key_;
  std::function<void(bool)> on_pause_;
  failover_listener on_failover_;
  std::function<void(bool)> on_fence_;
  bool paused_ = false;
  bool checked_unfinished_ = false;  // since this Meridian last became the leader
  std::uint64_t ending_epoch_ = 0;           // the epoch this leader is ending (0: none)
  clock::time_point ending_committed_{};     // when its ending was known committed
  std::int64_t ending_revision_ = 0;         // its etcd create revision (releases name it)
  clock::time_point released_at_{};          // every holder found released (time_point{}: not)
  std::uint64_t release_watch_ = 0;          // the watch_releases in force
  std::string authority_prefix_;  // holders' registrations and releases, per epoch
  clock::duration views_took_{};             // the last reading of every region's view
  clock::time_point last_lift_attempt_{};
};

}  // namespace meridian::failover
