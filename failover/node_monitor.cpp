#include "failover/node_monitor.hpp"

#include <algorithm>
#include <charconv>

#include <spdlog/spdlog.h>

namespace meridian::failover {

using clock = std::chrono::steady_clock;
using proxy::error_code;
using proxy::use_awaitable;

const char* const probe_sql =
    "SELECT pg_catalog.pg_is_in_recovery(),"
    " CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_lsn() END,"
    " pg_catalog.pg_last_wal_receive_lsn(),"
    " pg_catalog.pg_last_wal_replay_lsn(),"
    " extract(epoch FROM pg_catalog.pg_last_xact_replay_timestamp()),"
    " (SELECT system_identifier FROM pg_catalog.pg_control_system()),"
    " CASE WHEN pg_catalog.pg_is_in_recovery()"
    "  THEN coalesce((SELECT received_tli FROM pg_catalog.pg_stat_wal_receiver),"
    "                (SELECT timeline_id FROM pg_catalog.pg_control_checkpoint()))"
    "  ELSE ('x' || substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END,"
    // The epoch in which a Meridian that lost write authority fenced this node (node_admin).
    " pg_catalog.current_setting('meridian.fenced_epoch', true)";

struct node_monitor::node_probe {
  explicit node_probe(asio::any_io_executor ex) : client(ex), timer(ex) {}
  pg_client client;
  asio::steady_timer timer;
  bool reconnect = false;  // the node's address changed: connect afresh, ignore a probe in flight
};

struct node_monitor::probe_result {
  bool ok = false;
  std::string error;
  clock::time_point at;  // when the server ran the probe: midway through the round trip
  std::chrono::microseconds latency{0};
  bool in_recovery = false;
  std::optional<routing::lsn> wal, receive, replay;
  std::optional<double> last_replay_epoch;
  std::uint64_t system_id = 0;
  std::uint32_t timeline = 0;
  std::uint64_t fenced_epoch = 0;
  // Connecting, the node's port refused, or the connection was reset or closed before the
  // server said a word: nothing serves the port (through a forwarding relay or load balancer a
  // refusal arrives so). A server that is up but not accepting says why (57P03, 53300); a cut
  // link says nothing and times out.
  bool refused = false;
};

namespace {

template <class Int>
std::optional<Int> number(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  Int v{};
  auto [p, ec] = std::from_chars(text->data(), text->data() + text->size(), v);
  if (ec != std::errc{} || p != text->data() + text->size()) return std::nullopt;
  return v;
}

std::optional<routing::lsn> position(const std::optional<std::string>& text) {
  if (!text) return std::nullopt;
  return routing::lsn::parse(*text);
}

}  // namespace

node_monitor::node_monitor(monitor_settings settings, routing::topology_ptr initial, publisher publish)
    : settings_(std::move(settings)),
      base_(std::move(initial)),
      current_(*base_),
      publish_(std::move(publish)),
      policy_(settings_.policy),
      history_(settings_.history) {
  // Until its first probe, no replica serves reads: what it holds is not known yet.
  for (auto& s : current_.states) s.health.readable = false;
  for (std::size_t i = 0; i < current_.nodes.size(); ++i)
    probes_.push_back(std::make_unique<node_probe>(io_.get_executor()));
}

node_monitor::~node_monitor() { stop(); }

void node_monitor::start() {
  publish();
  for (std::size_t i = 0; i < probes_.size(); ++i) asio::co_spawn(io_, probe_loop(i), asio::detached);
  thread_ = std::thread([this] { io_.run(); });
}

void node_monitor::stop() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] {
    stopping_ = true;
    io_.stop();
  });
  thread_.join();
}

awaitable<void> node_monitor::probe_loop(std::size_t index) {
  // One loop per node for the monitor's lifetime; a removed node's loop idles, connection closed.
  auto& p = *probes_[index];
  for (;;) {
    const auto started = clock::now();
    if (p.reconnect || base_->nodes[index].removed) {
      p.reconnect = false;
      p.client.close();
    }
    if (!base_->nodes[index].removed) {
      auto r = co_await probe(index);
      if (stopping_) co_return;
      // Not if the node was removed or moved meanwhile: the answer is about what it was.
      if (!base_->nodes[index].removed && !p.reconnect) {
        apply(index, r);
        publish();
      }
    }
    p.timer.expires_at(started + settings_.interval);
    error_code ec;
    co_await p.timer.async_wait(asio::redirect_error(use_awaitable, ec));
    if (stopping_) co_return;
  }
}

tl::expected<void, std::string> node_monitor::reconfigure(routing::topology_ptr configured, monitor_settings settings) {
  const auto& next = configured->nodes;
  if (next.size() < current_.nodes.size()) return tl::unexpected(std::string("a node list may only grow (removed nodes are flagged)"));
  for (std::size_t i = 0; i < current_.nodes.size(); ++i) {
    if (next[i].name != current_.nodes[i].name)
      return tl::unexpected("node " + std::to_string(i) + " is \"" + current_.nodes[i].name + "\", not \"" + next[i].name + "\"");
    if (next[i].removed && !current_.nodes[i].removed && current_.states[i].role == routing::node_role::primary)
      return tl::unexpected("node " + next[i].name + " is the primary and cannot be removed; switch over to another node first");
  }
  if (settings.history != settings_.history) history_ = routing::wal_history(settings.history);
  policy_.set_settings(settings.policy);
  settings_ = std::move(settings);
  base_ = std::move(configured);
  for (std::size_t i = 0; i < next.size(); ++i) {
    const auto& n = next[i];
    if (i >= current_.nodes.size()) {
      // Added: a replica (roles are the topology authority's), serving no reads until probed.
      current_.nodes.push_back(n);
      routing::node_state added{routing::node_role::replica, {}};
      added.health.readable = false;
      current_.states.push_back(added);
      probes_.push_back(std::make_unique<node_probe>(io_.get_executor()));
      spdlog::info("node {} added ({}:{}, region {})", n.name, n.host, n.port, n.region);
      asio::co_spawn(io_, probe_loop(i), asio::detached);
      continue;
    }
    auto& was = current_.nodes[i];
    auto& state = current_.states[i];
    auto& p = *probes_[i];
    if (n.removed != was.removed) {
      p.reconnect = true;
      p.timer.cancel();  // its loop acts at once
      state.health = routing::node_health{};
      state.health.readable = false;
      if (n.removed) {
        state.role = routing::node_role::unknown;
        spdlog::info("node {} removed: no longer probed or routed to", n.name);
      } else {
        state.role = routing::node_role::replica;
        spdlog::info("node {} added again ({}:{}, region {})", n.name, n.host, n.port, n.region);
      }
    } else if (!n.removed && (n.host != was.host || n.port != was.port)) {
      // Another server answers now: nothing the old one said holds.
      spdlog::info("node {} moved from {}:{} to {}:{}", n.name, was.host, was.port, n.host, n.port);
      p.reconnect = true;
      p.timer.cancel();
      const auto role = state.role;
      state.health = routing::node_health{};
      state.health.readable = false;
      state.role = role;
    }
    was = n;
  }
  publish();
  return {};
}

awaitable<node_monitor::probe_result> node_monitor::probe(std::size_t index) {
  probe_result r;
  auto& p = *probes_[index];
  const auto& node = base_->nodes[index];
  auto deadline = clock::now() + settings_.timeout;
  // A connection kept from the last probe that broke is made again at once: whether the node
  // refuses it (nothing listens: its postmaster is gone) is known now, not a probe later.
  pg_rows found;
  for (bool kept = p.client.connected();; kept = false) {
    if (!p.client.connected()) {
      auto login = settings_.login;
      login.emplace_back("host", node.host);
      login.emplace_back("port", std::to_string(node.port));
      auto c = co_await p.client.connect(std::move(login), deadline);
      // A new connection across regions takes several round trips (TCP, start-up, SCRAM): the
      // probe itself gets the timeout of its own, as on a kept connection.
      if (c) deadline = clock::now() + settings_.timeout;
      if (!c) {
        r.error = c.error();
        r.refused = r.error.find("Connection refused") != std::string::npos ||
                    r.error.find("Connection reset") != std::string::npos ||
                    r.error.find("server closed the connection unexpectedly") != std::string::npos;
        co_return r;
      }
    }
    r.at = clock::now();
    auto rows = co_await p.client.query(probe_sql, deadline);
    if (rows) {
      found = std::move(*rows);
      break;
    }
    r.error = rows.error();
    if (!kept || p.client.connected() || clock::now() >= deadline) co_return r;
  }
  const auto sent = r.at;
  const auto received = clock::now();
  const auto* rows = &found;
  if (rows->size() != 1 || (*rows)[0].size() != 8) {
    r.error = "unexpected answer to the probe query";
    co_return r;
  }
  const auto& row = (*rows)[0];
  r.at = sent + (received - sent) / 2;
  r.latency = std::chrono::duration_cast<std::chrono::microseconds>(received - sent);
  r.in_recovery = row[0] == "t";
  r.wal = position(row[1]);
  r.receive = position(row[2]);
  r.replay = position(row[3]);
  if (row[4]) {
    try {
      r.last_replay_epoch = std::stod(*row[4]);
    } catch (const std::exception&) {
    }
  }
  r.system_id = number<std::uint64_t>(row[5]).value_or(0);
  r.timeline = number<std::uint32_t>(row[6]).value_or(0);
  r.fenced_epoch = number<std::uint64_t>(row[7]).value_or(0);
  r.ok = true;
  co_return r;
}

void node_monitor::apply(std::size_t index, const probe_result& r) {
  const auto& n = base_->nodes[index];
  auto& state = current_.states[index];
  auto& h = state.health;
  const bool first = !h.probed;
  h.probed = true;
  if (!r.ok) {
    if (h.reachable || first) spdlog::warn("node {} unreachable: {}", n.name, r.error);
    if (first) h.last_seen = clock::now();  // unreachable since start: count from there
    h.reachable = false;
    h.refused = r.refused;
    h.problem = "unreachable: " + r.error;
    return;
  }
  if (!h.reachable || first)
    spdlog::info("node {} reachable: {}, timeline {}, probe {} us", n.name, r.in_recovery ? "in recovery" : "primary",
                 r.timeline, r.latency.count());
  h.reachable = true;
  h.refused = false;
  h.last_seen = clock::now();
  h.problem.clear();
  if (h.in_recovery != r.in_recovery && !first)
    spdlog::warn("node {} is {} in recovery", n.name, r.in_recovery ? "now" : "no longer");
  h.in_recovery = r.in_recovery;
  h.timeline = r.timeline;
  h.system_id = r.system_id;
  h.fenced_epoch = r.fenced_epoch;
  h.last_replay_epoch = r.last_replay_epoch;
  // Smoothed, so one slow probe does not reorder the replicas.
  h.probe_latency = first ? r.latency : (h.probe_latency * 4 + r.latency) / 5;
  if (state.role == routing::node_role::primary && !r.in_recovery && r.wal) {
    h.wal = *r.wal;
    history_.record(r.at, *r.wal);
  }
  if (r.in_recovery) {
    h.receive = r.receive.value_or(routing::lsn{});
    h.replay = r.replay.value_or(routing::lsn{});
    // A primary that is down takes no more writes: the lag is what a replica lacked when it
    // was last seen. Down means its host refused the probe (nothing listens), or the majority's
    // leader is ending its epoch; merely unreachable, it may be writing behind a partition.
    auto at = r.at;
    if (const auto p = current_.primary()) {
      const auto& ph = current_.state(*p).health;
      if (!ph.reachable && (primary_ending_ || ph.refused) && ph.last_seen != clock::time_point{} && ph.last_seen < at)
        at = ph.last_seen;
    }
    h.lag = history_.lag(h.replay, at);
  } else {
    h.lag.reset();
  }
}

void node_monitor::set_primary_ending(bool ending) {
  if (ending == primary_ending_) return;
  primary_ending_ = ending;
  spdlog::info("replication lag is counted {}", ending ? "as of the lost primary's last probe (its epoch is ending)"
                                                       : "against the primary's current position again");
}

void node_monitor::assign(std::uint64_t epoch, const std::string& primary, const std::vector<std::string>& fenced) {
  const auto old_primary = current_.primary();
  for (const auto& n : current_.nodes) {
    auto& role = current_.states[n.id.value].role;
    if (n.removed) continue;  // stays out of every role
    if (n.name == primary) {
      role = routing::node_role::primary;
    } else if (std::find(fenced.begin(), fenced.end(), n.name) != fenced.end()) {
      role = routing::node_role::fenced;
    } else {
      role = routing::node_role::replica;
    }
  }
  if (current_.primary() != old_primary) history_ = routing::wal_history(settings_.history);  // another server's WAL
  current_.epoch = epoch;
  publish();
}

void node_monitor::publish() {
  policy_.apply(current_);
  publish_(std::make_shared<const routing::topology>(current_));
}

}  // namespace meridian::failover
