#pragma once
// What failover does to PostgreSQL nodes, each step verified: promote a replica (pg_promote,
// then check it left recovery on a new timeline), repoint a replica to a new primary
// (primary_conninfo with ALTER SYSTEM and a reload, then check it streams from there), and
// fence an old primary that is still up (read-only by default, its sessions terminated).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include <tl/expected.hpp>

#include "failover/pg_client.hpp"
#include "routing/lag.hpp"
#include "routing/topology.hpp"

namespace meridian::failover {

struct admin_settings {
  pg_client::keywords login;  // a superuser (pg_promote, ALTER SYSTEM, pg_terminate_backend)
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds promote_timeout{30'000};
  std::chrono::milliseconds repoint_timeout{30'000};
  std::chrono::milliseconds catch_up_timeout{5'000};
  // primary_conninfo for a repointed replica; {host}, {port} and {name} (the replica's node
  // name) are filled in.
  std::string primary_conninfo = "host={host} port={port} user=replicator application_name={name}";
  // Commands that replace the SQL steps where the servers are managed elsewhere (RDS:
  // `aws rds promote-read-replica --db-instance-identifier … --region {region}`). Placeholders:
  // {node} {host} {port} {region} of the node acted on, {primary} {primary_host}
  // {primary_port} {primary_region} of the (new) primary. A promotion is still verified with
  // SQL (out of recovery, new timeline); a repoint or fence command's exit status is its result.
  std::string promote_command;
  std::string repoint_command;
  std::string fence_command;
  // Brings a fenced old primary back as a replica of the primary (no SQL way exists: pg_rewind
  // needs its data directory). Verified afterwards: in recovery, streaming from the primary.
  std::string rejoin_command;
};

class node_admin {
 public:
  node_admin(asio::any_io_executor executor, admin_settings settings);

  // The new primary's timeline once it reports it is out of recovery.
  awaitable<tl::expected<std::uint32_t, std::string>> promote(const routing::node& n);
  awaitable<tl::expected<void, std::string>> repoint(const routing::node& replica, const routing::node& primary);
  // Before its promotion: `replica` streams from `source`, another replica (cascading), until it
  // has replayed `position`; within catch_up_timeout. SQL only (not with a repoint command).
  awaitable<tl::expected<void, std::string>> catch_up(const routing::node& replica, const routing::node& source,
                                                      routing::lsn position);
  // After it: the slot `replica` used on `source` goes, unless something streams from it.
  awaitable<void> drop_catch_up_slot(const routing::node& replica, const routing::node& source);
  // true: the node was a primary and is now read-only; false: it is not reachable, already in
  // recovery or already read-only (nothing to do).
  awaitable<tl::expected<bool, std::string>> fence(const routing::node& old_primary);
  // A Meridian that lost write authority over `epoch` fences the primary it can still reach:
  // read-only by default, marked meridian.fenced_epoch = epoch, client sessions terminated (an
  // open transaction must not commit behind a promotion). true: fenced now; false: already
  // read-only, in recovery or unreachable.
  awaitable<tl::expected<bool, std::string>> self_fence(const routing::node& primary, std::uint64_t epoch);
  // Undoes self_fence where the mark is still `epoch` (the majority kept the primary). true:
  // writable again; false: not so marked (nothing done).
  awaitable<tl::expected<bool, std::string>> lift_self_fence(const routing::node& primary, std::uint64_t epoch);

  awaitable<tl::expected<void, std::string>> rejoin(const routing::node& old_primary, const routing::node& primary);
  // Waits until `replica` streams from `primary`.
  awaitable<tl::expected<void, std::string>> verify_streaming(const routing::node& replica, const routing::node& primary,
                                                              std::chrono::milliseconds timeout);

  // Planned switchover, on the old primary: new transactions read-only (or writable again),
  // then wait until no transaction that wrote is still open; its final WAL position.
  awaitable<tl::expected<void, std::string>> set_read_only(const routing::node& n, bool read_only);
  // Waits until no client transaction is open (those admitted before a pause finish).
  awaitable<tl::expected<void, std::string>> drain_transactions(const routing::node& n, std::chrono::milliseconds timeout);
  awaitable<tl::expected<routing::lsn, std::string>> drain_writes(const routing::node& n, std::chrono::milliseconds timeout);
  // Waits until a replica has replayed `position`.
  awaitable<tl::expected<void, std::string>> wait_replayed(const routing::node& n, routing::lsn position,
                                                           std::chrono::milliseconds timeout);

  [[nodiscard]] std::string conninfo_for(const routing::node& replica, const routing::node& primary) const;
  // The host and port a primary_conninfo connects to (the primary's own where it names none).
  static std::pair<std::string, std::string> conninfo_target(const std::string& conninfo, const routing::node& primary);

 private:
  // Read-only by default (and marked meridian.fenced_epoch = mark, when given), reloaded, client
  // sessions terminated. false: unreachable, in recovery or already read-only.
  awaitable<tl::expected<bool, std::string>> fence_with_sql(const routing::node& n, std::optional<std::uint64_t> mark);
  awaitable<tl::expected<void, std::string>> repoint_once(const routing::node& replica, const routing::node& primary,
                                                          std::chrono::steady_clock::time_point deadline);
  awaitable<tl::expected<void, std::string>> open(pg_client& c, const routing::node& n);
  awaitable<void> pause(std::chrono::milliseconds d);
  // Polls `count_sql` (one count) on `c` until it is 0 or the deadline passes.
  awaitable<tl::expected<void, std::string>> wait_none(pg_client& c, const routing::node& n, std::string_view count_sql,
                                                       std::string_view what, std::chrono::steady_clock::time_point deadline);
  awaitable<tl::expected<void, std::string>> hook(const std::string& command, const routing::node& n,
                                                  const routing::node* primary, std::chrono::milliseconds timeout);

  asio::any_io_executor executor_;
  admin_settings settings_;
};

// A SQL string literal.
[[nodiscard]] std::string sql_literal(std::string_view text);

}  // namespace meridian::failover
