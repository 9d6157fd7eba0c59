#include "failover/node_admin.hpp"

#include <vector>

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include "failover/command.hpp"

namespace meridian::failover {

using clock = std::chrono::steady_clock;
using proxy::error_code;
using proxy::use_awaitable;

namespace {
const char* const timeline_sql =
    "SELECT pg_catalog.pg_is_in_recovery(), CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE"
    " ('x' || substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END";

std::string replace_all(std::string s, std::string_view from, const std::string& to) {
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}
}  // namespace

std::string sql_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    out += c;
    if (c == '\'') out += c;
  }
  return out + "'";
}

node_admin::node_admin(asio::any_io_executor executor, admin_settings settings)
    : executor_(executor), settings_(std::move(settings)) {}

std::string node_admin::conninfo_for(const routing::node& replica, const routing::node& primary) const {
  auto s = replace_all(settings_.primary_conninfo, "{host}", primary.host);
  s = replace_all(std::move(s), "{port}", std::to_string(primary.port));
  return replace_all(std::move(s), "{name}", replica.name);
}

std::pair<std::string, std::string> node_admin::conninfo_target(const std::string& conninfo, const routing::node& primary) {
  std::pair<std::string, std::string> target{primary.host, std::to_string(primary.port)};
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  if (!options) {
    PQfreemem(error);
    return target;
  }
  for (auto* o = options; o->keyword; ++o) {
    if (!o->val) continue;
    if (std::string_view(o->keyword) == "host") target.first = o->val;
    if (std::string_view(o->keyword) == "port") target.second = o->val;
  }
  PQconninfoFree(options);
  return target;
}

awaitable<void> node_admin::pause(std::chrono::milliseconds d) {
  asio::steady_timer t(executor_, d);
  error_code ec;
  co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
}

awaitable<tl::expected<void, std::string>> node_admin::open(pg_client& c, const routing::node& n) {
  auto login = settings_.login;
  login.emplace_back("host", n.host);
  login.emplace_back("port", std::to_string(n.port));
  auto r = co_await c.connect(std::move(login), clock::now() + settings_.connect_timeout);
  if (!r) co_return tl::unexpected(n.name + ": " + r.error());
  co_return tl::expected<void, std::string>{};
}

awaitable<tl::expected<void, std::string>> node_admin::hook(const std::string& command, const routing::node& n,
                                                            const routing::node* primary, std::chrono::milliseconds timeout) {
  std::map<std::string, std::string> values{
      {"node", n.name}, {"host", n.host}, {"port", std::to_string(n.port)}, {"region", n.region}};
  if (primary) {
    values["primary"] = primary->name;
    values["primary_host"] = primary->host;
    values["primary_port"] = std::to_string(primary->port);
    values["primary_region"] = primary->region;
  }
  const std::string line = fill_placeholders(command, values);
  spdlog::info("failover: running: {}", line);
  auto r = co_await run_command(executor_, line, timeout);
  if (!r) co_return tl::unexpected(n.name + ": `" + line + "` " + r.error());
  co_return tl::expected<void, std::string>{};
}

awaitable<tl::expected<std::uint32_t, std::string>> node_admin::promote(const routing::node& n) {
  const auto deadline = clock::now() + settings_.promote_timeout;
  if (!settings_.promote_command.empty()) {
    if (auto h = co_await hook(settings_.promote_command, n, &n, settings_.promote_timeout); !h)
      co_return tl::unexpected(h.error());
    // Verified as below, once the node answers again out of recovery.
    for (;;) {
      pg_client c(executor_);
      if (co_await open(c, n)) {
        auto state = co_await c.query(timeline_sql, deadline);
        if (state && state->size() == 1 && (*state)[0][0] == "f" && (*state)[0][1])
          co_return static_cast<std::uint32_t>(std::stoul(*(*state)[0][1]));
      }
      if (clock::now() >= deadline) co_return tl::unexpected(n.name + ": still in recovery after the promote command");
      co_await pause(std::chrono::milliseconds(500));
    }
  }
  pg_client c(executor_);
  if (auto o = co_await open(c, n); !o) co_return tl::unexpected(o.error());
  const auto wait_seconds = std::max<long long>(1, std::chrono::duration_cast<std::chrono::seconds>(settings_.promote_timeout).count());
  const std::string sql = "SELECT pg_catalog.pg_promote(true, " + std::to_string(wait_seconds) + ")";
  auto before = co_await c.query(timeline_sql, deadline);
  if (!before) co_return tl::unexpected(n.name + ": " + before.error());
  if (before->size() == 1 && (*before)[0][0] == "t") {
    auto promoted = co_await c.query(sql, deadline);
    if (!promoted) co_return tl::unexpected(n.name + ": pg_promote failed: " + promoted.error());
    if (promoted->size() != 1 || (*promoted)[0][0] != "t")
      co_return tl::unexpected(n.name + ": pg_promote did not finish in time");
  }
  // Verified, not assumed: out of recovery, and on which timeline.
  auto after = co_await c.query(timeline_sql, deadline);
  if (!after) co_return tl::unexpected(n.name + ": " + after.error());
  if (after->size() != 1 || (*after)[0][0] != "f" || !(*after)[0][1])
    co_return tl::unexpected(n.name + ": still in recovery after pg_promote");
  co_return static_cast<std::uint32_t>(std::stoul(*(*after)[0][1]));
}

awaitable<tl::expected<void, std::string>> node_admin::repoint(const routing::node& replica, const routing::node& primary) {
  if (!settings_.repoint_command.empty())
    co_return co_await hook(settings_.repoint_command, replica, &primary, settings_.repoint_timeout);
  // Every step is idempotent: a replica that cannot be reached now (restarting, or behind a
  // network partition) is tried again until the timeout.
  const auto deadline = clock::now() + settings_.repoint_timeout;
  for (;;) {
    auto done = co_await repoint_once(replica, primary, deadline);
    if (done || clock::now() + std::chrono::milliseconds(500) >= deadline) co_return done;
    spdlog::info("failover: repointing {} again: {}", replica.name, done.error());
    co_await pause(std::chrono::milliseconds(500));
  }
}

awaitable<tl::expected<void, std::string>> node_admin::repoint_once(const routing::node& replica, const routing::node& primary,
                                                                    clock::time_point deadline) {
  pg_client r(executor_);
  if (auto o = co_await open(r, replica); !o) co_return tl::unexpected(o.error());
  // Replication slots are not copied to a promoted replica: create the one this replica uses.
  auto slot = co_await r.query("SHOW primary_slot_name", deadline);
  if (!slot) co_return tl::unexpected(replica.name + ": " + slot.error());
  if (slot->size() == 1 && (*slot)[0][0] && !(*slot)[0][0]->empty()) {
    pg_client p(executor_);
    if (auto o = co_await open(p, primary); !o) co_return tl::unexpected(o.error());
    const auto name = sql_literal(*(*slot)[0][0]);
    const std::string create = "SELECT pg_catalog.pg_create_physical_replication_slot(" + name +
                               ") WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_replication_slots WHERE slot_name = " + name + ")";
    if (auto made = co_await p.query(create, deadline); !made)
      co_return tl::unexpected(primary.name + ": cannot create slot " + name + ": " + made.error());
  }
  const std::string set = "ALTER SYSTEM SET primary_conninfo = " + sql_literal(conninfo_for(replica, primary));
  if (auto s = co_await r.query(set, deadline); !s) co_return tl::unexpected(replica.name + ": " + s.error());
  if (auto s = co_await r.query("SELECT pg_catalog.pg_reload_conf()", deadline); !s)
    co_return tl::unexpected(replica.name + ": " + s.error());
  // Streaming from the new primary, which is what counts.
  co_return co_await verify_streaming(replica, primary, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()));
}

awaitable<tl::expected<void, std::string>> node_admin::catch_up(const routing::node& replica, const routing::node& source,
                                                               routing::lsn position) {
  if (!settings_.repoint_command.empty())
    co_return tl::unexpected(std::string("failover.repoint_command is set: replicas cannot stream from each other here"));
  const auto deadline = clock::now() + settings_.catch_up_timeout;
  if (auto r = co_await repoint_once(replica, source, deadline); !r) co_return r;
  co_return co_await wait_replayed(replica, position,
                                   std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()));
}

awaitable<void> node_admin::drop_catch_up_slot(const routing::node& replica, const routing::node& source) {
  pg_client r(executor_);
  if (auto o = co_await open(r, replica); !o) co_return;
  const auto deadline = clock::now() + settings_.connect_timeout;
  auto slot = co_await r.query("SHOW primary_slot_name", deadline);
  if (!slot || slot->size() != 1 || !(*slot)[0][0] || (*slot)[0][0]->empty()) co_return;
  pg_client s(executor_);
  if (auto o = co_await open(s, source); !o) co_return;
  const auto name = sql_literal(*(*slot)[0][0]);
  (void)co_await s.query("SELECT pg_catalog.pg_drop_replication_slot(slot_name) FROM pg_catalog.pg_replication_slots"
                         " WHERE slot_name = " + name + " AND NOT active",
                         deadline);
}

awaitable<tl::expected<void, std::string>> node_admin::verify_streaming(const routing::node& replica,
                                                                        const routing::node& primary,
                                                                        std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  // Where the replica should be streaming from: the host and port its primary_conninfo names
  // (the configured template may name the primary otherwise than Meridian's node list does).
  const auto expected = conninfo_target(conninfo_for(replica, primary), primary);
  const std::string check = "SELECT status, sender_host, sender_port FROM pg_catalog.pg_stat_wal_receiver";
  std::string seen = "no WAL receiver";
  while (clock::now() < deadline) {
    pg_client r(executor_);
    if (auto o = co_await open(r, replica); !o) {
      seen = o.error();  // restarting, perhaps
    } else if (auto w = co_await r.query(check, deadline); !w) {
      seen = w.error();
    } else if (w->size() == 1 && (*w)[0][0] && (*w)[0][1] && (*w)[0][2]) {
      seen = *(*w)[0][0] + " from " + *(*w)[0][1] + ":" + *(*w)[0][2];
      if (*(*w)[0][0] == "streaming" && *(*w)[0][1] == expected.first && *(*w)[0][2] == expected.second)
        co_return tl::expected<void, std::string>{};
    }
    co_await pause(std::chrono::milliseconds(100));
  }
  co_return tl::unexpected(replica.name + ": not streaming from " + primary.name + " in time (" + seen + ")");
}

awaitable<tl::expected<void, std::string>> node_admin::rejoin(const routing::node& old_primary, const routing::node& primary) {
  if (settings_.rejoin_command.empty())
    co_return tl::unexpected(old_primary.name + ": rejoining needs failover.rejoin_command (pg_rewind works on the "
                             "node's data directory, which Meridian cannot reach)");
  if (auto h = co_await hook(settings_.rejoin_command, old_primary, &primary, settings_.repoint_timeout); !h)
    co_return tl::unexpected(h.error());
  co_return co_await verify_streaming(old_primary, primary, settings_.repoint_timeout);
}

awaitable<tl::expected<void, std::string>> node_admin::set_read_only(const routing::node& n, bool read_only) {
  pg_client c(executor_);
  if (auto o = co_await open(c, n); !o) co_return tl::unexpected(o.error());
  const auto deadline = clock::now() + settings_.connect_timeout;
  const std::string set = read_only ? "ALTER SYSTEM SET default_transaction_read_only = on"
                                    : "ALTER SYSTEM RESET default_transaction_read_only";
  for (std::string_view sql : {std::string_view(set), std::string_view("SELECT pg_catalog.pg_reload_conf()")})
    if (auto r = co_await c.query(sql, deadline); !r) co_return tl::unexpected(n.name + ": " + r.error());
  co_return tl::expected<void, std::string>{};
}

awaitable<tl::expected<void, std::string>> node_admin::wait_none(pg_client& c, const routing::node& n,
                                                                 std::string_view count_sql, std::string_view what,
                                                                 std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    auto r = co_await c.query(count_sql, deadline);
    if (!r) co_return tl::unexpected(n.name + ": " + r.error());
    if (r->size() == 1 && (*r)[0][0] == "0") co_return tl::expected<void, std::string>{};
    if (clock::now() >= deadline) co_return tl::unexpected(n.name + ": " + std::string(what) + " still open");
    co_await pause(std::chrono::milliseconds(20));
  }
}

awaitable<tl::expected<void, std::string>> node_admin::drain_transactions(const routing::node& n,
                                                                          std::chrono::milliseconds timeout) {
  pg_client c(executor_);
  if (auto o = co_await open(c, n); !o) co_return tl::unexpected(o.error());
  const char* const open_transactions =
      "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend'"
      " AND xact_start IS NOT NULL AND pid <> pg_catalog.pg_backend_pid()";
  co_return co_await wait_none(c, n, open_transactions, "transactions", clock::now() + timeout);
}

awaitable<tl::expected<routing::lsn, std::string>> node_admin::drain_writes(const routing::node& n,
                                                                             std::chrono::milliseconds timeout) {
  pg_client c(executor_);
  if (auto o = co_await open(c, n); !o) co_return tl::unexpected(o.error());
  const auto deadline = clock::now() + timeout;
  // Transactions that hold a transaction id have written (or locked rows for writing).
  const char* const open_writes =
      "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend'"
      " AND backend_xid IS NOT NULL AND pid <> pg_catalog.pg_backend_pid()";
  if (auto w = co_await wait_none(c, n, open_writes, "transactions that wrote", deadline); !w)
    co_return tl::unexpected(w.error());
  // Everything committed with synchronous_commit on is flushed, hence streamed (a commit made
  // with it off in the last wal_writer_delay may not be: the same bargain as on a crash).
  auto pos = co_await c.query("SELECT pg_catalog.pg_current_wal_flush_lsn()", deadline);
  if (!pos || pos->size() != 1 || !(*pos)[0][0]) co_return tl::unexpected(n.name + ": cannot read its WAL position");
  auto l = routing::lsn::parse(*(*pos)[0][0]);
  if (!l) co_return tl::unexpected(n.name + ": unreadable WAL position");
  co_return *l;
}

awaitable<tl::expected<void, std::string>> node_admin::wait_replayed(const routing::node& n, routing::lsn position,
                                                                     std::chrono::milliseconds timeout) {
  pg_client c(executor_);
  if (auto o = co_await open(c, n); !o) co_return tl::unexpected(o.error());
  const auto deadline = clock::now() + timeout;
  for (;;) {
    auto r = co_await c.query("SELECT pg_catalog.pg_last_wal_replay_lsn()", deadline);
    if (!r) co_return tl::unexpected(n.name + ": " + r.error());
    if (r->size() == 1 && (*r)[0][0]) {
      auto l = routing::lsn::parse(*(*r)[0][0]);
      if (l && *l >= position) co_return tl::expected<void, std::string>{};
    }
    if (clock::now() >= deadline)
      co_return tl::unexpected(n.name + ": has not replayed " + position.to_string() + " in time");
    co_await pause(std::chrono::milliseconds(10));
  }
}

awaitable<tl::expected<bool, std::string>> node_admin::self_fence(const routing::node& primary, std::uint64_t epoch) {
  co_return co_await fence_with_sql(primary, epoch);
}

awaitable<tl::expected<bool, std::string>> node_admin::lift_self_fence(const routing::node& primary, std::uint64_t epoch) {
  pg_client c(executor_);
  if (auto o = co_await open(c, primary); !o) co_return tl::unexpected(o.error());
  const auto deadline = clock::now() + settings_.repoint_timeout;
  auto mark = co_await c.query("SELECT pg_catalog.current_setting('meridian.fenced_epoch', true)", deadline);
  if (!mark) co_return tl::unexpected(primary.name + ": " + mark.error());
  if (mark->size() != 1 || (*mark)[0][0] != std::to_string(epoch)) co_return false;
  for (const char* sql : {"ALTER SYSTEM RESET default_transaction_read_only", "ALTER SYSTEM RESET meridian.fenced_epoch",
                          "SELECT pg_catalog.pg_reload_conf()"}) {
    if (auto r = co_await c.query(sql, deadline); !r) co_return tl::unexpected(primary.name + ": " + r.error());
  }
  co_return true;
}

awaitable<tl::expected<bool, std::string>> node_admin::fence(const routing::node& old_primary) {
  if (!settings_.fence_command.empty()) {
    auto h = co_await hook(settings_.fence_command, old_primary, nullptr, settings_.repoint_timeout);
    if (!h) co_return tl::unexpected(h.error());
    co_return true;
  }
  co_return co_await fence_with_sql(old_primary, std::nullopt);
}

awaitable<tl::expected<bool, std::string>> node_admin::fence_with_sql(const routing::node& n,
                                                                      std::optional<std::uint64_t> mark) {
  pg_client c(executor_);
  if (auto o = co_await open(c, n); !o) co_return false;  // unreachable: nothing to fence now
  const auto deadline = clock::now() + settings_.repoint_timeout;
  auto state = co_await c.query(
      "SELECT pg_catalog.pg_is_in_recovery(), pg_catalog.current_setting('default_transaction_read_only')", deadline);
  if (!state) co_return tl::unexpected(n.name + ": " + state.error());
  // Already a replica, or already fenced: nothing to do.
  if (state->size() == 1 && ((*state)[0][0] == "t" || (*state)[0][1] == "on")) co_return false;
  std::vector<std::string> steps{"ALTER SYSTEM SET default_transaction_read_only = on"};
  if (mark) {
    // ALTER SYSTEM knows a custom parameter only once the session has it as a placeholder.
    const std::string value = "'" + std::to_string(*mark) + "'";
    steps.push_back("SET meridian.fenced_epoch = " + value);
    steps.push_back("ALTER SYSTEM SET meridian.fenced_epoch = " + value);
  }
  steps.push_back("SELECT pg_catalog.pg_reload_conf()");
  steps.push_back("SELECT pg_catalog.pg_terminate_backend(pid) FROM pg_catalog.pg_stat_activity"
                  " WHERE backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()");
  for (const auto& sql : steps)
    if (auto r = co_await c.query(sql, deadline); !r) co_return tl::unexpected(n.name + ": " + r.error());
  co_return true;
}

}  // namespace meridian::failover
