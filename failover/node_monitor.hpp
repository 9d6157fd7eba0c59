#pragma once
// The node monitor: off the query path, on a thread of its own, one libpq connection per node.
// Every interval it probes each node for reachability and probe latency, role, timeline and
// system identifier, the primary's WAL position and the replicas' receive and replay positions;
// it keeps a history of the primary's position to turn a replica's replay position into a lag
// in time, decides which replicas may serve reads (read_policy), and publishes a new topology
// snapshot after every probe.
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <tl/expected.hpp>

#include "failover/pg_client.hpp"
#include "failover/read_policy.hpp"
#include "routing/lag.hpp"
#include "routing/topology.hpp"

namespace meridian::failover {

struct monitor_settings {
  pg_client::keywords login;  // user, password, dbname, sslmode… (host and port come per node)
  std::chrono::milliseconds interval{250};
  // Connecting, and then the probe, each within this; a node that misses it is unreachable.
  std::chrono::milliseconds timeout{1000};
  std::chrono::milliseconds history{std::chrono::minutes(5)};
  read_policy_settings policy;
};

// The probe, one round trip on either role. Columns: in recovery, WAL position (primary),
// receive and replay positions and last replay time (replica), system identifier, timeline.
extern const char* const probe_sql;

class node_monitor {
 public:
  using publisher = std::function<void(routing::topology_ptr)>;

  node_monitor(monitor_settings settings, routing::topology_ptr initial, publisher publish);
  ~node_monitor();
  node_monitor(const node_monitor&) = delete;
  node_monitor& operator=(const node_monitor&) = delete;

  void start();
  void stop();

  // The monitor's thread and what it last saw; for the coordinator, which runs there too.
  [[nodiscard]] asio::io_context& io() { return io_; }
  [[nodiscard]] const routing::topology& current() const { return current_; }
  // Roles as the topology authority (etcd, or this instance alone) assigns them: `primary`,
  // the `fenced` former primaries, every other node a replica. Monitor's thread only.
  void assign(std::uint64_t epoch, const std::string& primary, const std::vector<std::string>& fenced);
  // The etcd majority's leader is ending the epoch (its primary is lost to a majority of
  // regions): no write the primary takes from now on survives, so while this monitor cannot
  // reach it, replicas' lag is counted as of when it was last seen rather than growing with
  // the clock, and those that had what it had then serve reads again. (So it is, too, while
  // the primary's host refuses connections.) Monitor's thread.
  void set_primary_ending(bool ending);
  // A reloaded configuration: `configured` keeps every node at its id (removed ones flagged),
  // new nodes come after; lag limits, addresses and the read policy change in place. A node
  // added joins as a replica and serves no reads until probed; a node that moved is probed
  // afresh at its new address; a removed one is no longer probed. Refused, with nothing
  // changed, when it would remove the primary. Monitor's thread only. (The login stays.)
  tl::expected<void, std::string> reconfigure(routing::topology_ptr configured, monitor_settings settings);

 private:
  struct node_probe;
  struct probe_result;

  awaitable<void> probe_loop(std::size_t index);
  awaitable<probe_result> probe(std::size_t index);
  void apply(std::size_t index, const probe_result& r);
  void publish();

  monitor_settings settings_;
  routing::topology_ptr base_;
  routing::topology current_;
  publisher publish_;
  read_policy policy_;
  routing::wal_history history_;
  bool primary_ending_ = false;
  asio::io_context io_{1};
  std::vector<std::unique_ptr<node_probe>> probes_;
  std::thread thread_;
  bool stopping_ = false;
};

}  // namespace meridian::failover
