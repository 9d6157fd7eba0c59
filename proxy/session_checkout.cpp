// The client session: a server connection for each unit of work, and write authority over what may
// write (see session_parts.hpp for how the session is split).
#include "proxy/session.hpp"
#include "proxy/session_parts.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "protocol/backend.hpp"
#include "protocol/codec.hpp"
#include "protocol/error.hpp"
#include "protocol/frontend.hpp"
#include "protocol/startup.hpp"
#include "proxy/client_auth.hpp"
#include "proxy/logging.hpp"
#include "proxy/metrics.hpp"
#include "proxy/params.hpp"
#include "proxy/pool.hpp"
#include "proxy/send_now.hpp"
#include "proxy/worker.hpp"
#include "routing/router.hpp"

namespace meridian::proxy {

using namespace session_parts;  // and its pr, fe_t, be_t, clock

namespace {

// The node takes no connection now, and nothing was sent to it: refused, unreachable, or it
// says it cannot (57P03: starting up, shutting down, in recovery).
bool unreachable(const server_error& e) {
  return e.sqlstate == pr::sqlstate::connection_failure || e.sqlstate == pr::sqlstate::cannot_connect_now;
}

// How often held work looks again at a primary that is not known to be down.
constexpr auto hold_retry = std::chrono::milliseconds(250);

// One client's hold of work for a failover, counted in its worker's meter while it lasts; at
// most failover.hold_clients at once in this Meridian.
class held_work {
 public:
  held_work(worker_meter& own, const metrics& all, std::size_t limit) : own_(own), all_(all), limit_(limit) {}
  held_work(const held_work&) = delete;
  held_work& operator=(const held_work&) = delete;
  ~held_work() {
    if (!counted_) return;
    own_.held.add(-1);
    if (!served_) own_.held_refused.add(1);
  }
  // Counts this client as held (once); false when failover.hold_clients are held already.
  bool admit() {
    if (counted_) return true;
    std::int64_t held = 0;
    for (const auto& m : all_.meters()) held += m->held.get();
    if (held >= static_cast<std::int64_t>(limit_)) {
      own_.held_refused.add(1);
      return false;
    }
    own_.held.add(1);
    counted_ = true;
    return true;
  }
  // The work went on to a primary after waiting since `since`.
  void served(clock::time_point since) {
    if (!counted_ || served_) return;
    served_ = true;
    own_.held_served.add(1);
    own_.held_wait.observe(clock::now() - since);
  }
  [[nodiscard]] bool counted() const { return counted_; }

 private:
  worker_meter& own_;
  const metrics& all_;
  std::size_t limit_;
  bool counted_ = false, served_ = false;
};

}  // namespace

void session::on_handover(handover h) {
  try {
    if (h.conn) {
      if (!params_to_sync(*h.conn).empty()) {
        auto self = shared_from_this();
        asio::co_spawn(client_.get_executor(), attach_handed(std::move(h.conn)), [self](const std::exception_ptr&, bool waiting) {
          if (!waiting) self->end();
        });
        return;
      }
      attach_to(std::move(h.conn), queued_.decision, queued_.read, true);
    } else if (h.error && queued_.read && queued_.decision.node &&
               unreachable(*h.error) && read_skips_ < 2) {
      // A read whose node could not be reached, as attach() handles it: nothing was sent yet,
      // so the node is skipped a while and the turn routes the read again, elsewhere.
      ++read_skips_;
      spdlog::warn("[c{}] {} unavailable, reading from elsewhere: {}", id_,
                   worker_.topology().at(*queued_.decision.node).name, h.error->message);
      worker_.skip_node(*queued_.decision.node);
    } else if (h.error && !queued_.decision.replica && unreachable(*h.error) &&
               hold_settings().hold_timeout.count() > 0) {
      // The primary cannot be reached and nothing was sent to it: attach() holds the batch
      // for the failover.
      attach_slowly_ = true;
    } else if (h.error) {
      spdlog::warn("[c{}] no server connection: {}", id_, h.error->message);
      refuse_batch(*h.error);
    }
    // With room to connect instead, the turn asks again (and serve() connects).
  } catch (const std::exception& e) {
    spdlog::error("[c{}] ended: {}", id_, e.what());
    return end();
  }
  continue_turn();
}

awaitable<bool> session::attach_handed(server_conn_ptr sc) {
  if (auto err = co_await sync_params(*sc)) {
    give_back(sc);
    // Lost before use (see attach()): the turn routes the work again.
    if (!unreachable(*err)) refuse_batch(*err);
  } else {
    attach_to(std::move(sc), queued_.decision, queued_.read, true);
  }
  co_return co_await serve(false);
}

void session::attach_to(server_conn_ptr sc, const routing::route_decision& decision, bool read, bool spawn_reader) {
  if (read) worker_.meter().read_routed(decision.node->value);
  on_replica_ = decision.replica;
  read_skips_ = 0;
  attached_ = std::move(sc);
  core_.attached(decision.replica);
  if (spawn_reader) read_server(attached_);
}

pool& session::pool_of(routing::node_id node) {
  if (recent_pools_[0].p && recent_pools_[0].node == node) return *recent_pools_[0].p;
  if (!recent_pools_[1].p || recent_pools_[1].node != node)
    recent_pools_[1] = {node, &worker_.pool_for(pool_key{node, user_, database_}, user_cfg_)};
  std::swap(recent_pools_[0], recent_pools_[1]);  // the one just used first
  return *recent_pools_[0].p;
}

awaitable<void> session::read_catalog() {
  auto& db = routing_state();
  db.loading = true;
  query_rows rows;
  auto loaded = co_await run_on_read_node(std::string(function_catalog_query), &rows);
  db.loading = false;
  if (loaded) {
    worker_.set_functions(database_, rows);
  } else {
    // Routing goes on with what it knows (PostgreSQL's own functions, the allow-list); another
    // session tries again in a second.
    db.retry_at = clock::now() + std::chrono::seconds(1);
    spdlog::warn("[c{}] could not read the catalog of database {}: {}", id_, database_, loaded.error().message);
  }
}

session::attaching session::attach_now(const routing::route_request& asked) {
  if (worker_.paused()) return attaching::slow;
  if (attach_slowly_) {
    attach_slowly_ = false;
    return attaching::slow;
  }
  const auto request = with_consistency(asked);
  auto decision = routing::choose_node(worker_.topology(), worker_.route_context(), request);
  if (!decision.node) return attaching::slow;
  if (decision.confirm && !replay_confirmed(*decision.node)) return attaching::slow;
  auto& p = pool_of(*decision.node);
  auto sc = p.try_acquire();
  if (!sc) {
    if (!p.full()) return attaching::slow;  // room to connect: attach() connects
    queued_ = {decision, routing::wants_replica(request)};
    p.wait(clock::now() + worker_.cfg().wait_timeout, shared_from_this());
    return attaching::queued;
  }
  if (!params_to_sync(*sc).empty()) {
    p.put_back(std::move(sc));  // the session's parameters must be set first: attach() does it
    return attaching::slow;
  }
  p.checked_out();
  attach_to(std::move(sc), decision, routing::wants_replica(request), true);
  return attaching::attached;
}

void session::give_back(server_conn_ptr& sc) {
  if (sc->tx == pr::tx_status::idle && sc->socket.is_open()) {
    sc->owner->release(sc);
  } else {
    sc->owner->discard(sc);
  }
}

awaitable<std::optional<server_error>> session::attach(routing::route_request asked, bool spawn_reader) {
  auto request = with_consistency(asked);
  const bool read = routing::wants_replica(request);
  if (worker_.paused()) {
    // PAUSE (an operator's, or a switchover's): the transaction starts once resumed.
    const auto deadline = clock::now() + worker_.cfg().wait_timeout;
    if (!co_await worker_.wait_resumed(deadline))
      co_return server_error{std::string(pr::sqlstate::too_many_connections),
                             "Meridian is paused: no transaction could start within pool.wait_timeout"};
  }
  // Work bound for the primary while it cannot take it waits (write authority lapsed: up to
  // coordination.write_wait; a failover under way: up to failover.hold_timeout), then is refused.
  const auto& fo = worker_.cfg().failover;
  routing::primary_hold hold(hold_settings());
  held_work held(worker_.meter(), *worker_.shared().stats, fo.hold_clients);
  std::size_t lost_before_use = 0;  // pooled connections found dead (at most a pool's worth: then the error)
  // None while the work may wait until `until`; else what refuses it: `otherwise` once its time
  // is up, 57P03 beyond failover.hold_clients.
  auto refusal = [&](clock::time_point until, const std::string& why, server_error otherwise) -> std::optional<server_error> {
    if (clock::now() >= until || shutdown_requested_) {
      spdlog::warn("[c{}] refused work for the primary: {}", id_, otherwise.message);
      return otherwise;
    }
    if (!hold.failover() || held.counted()) return std::nullopt;
    if (!held.admit())
      return server_error{std::string(pr::sqlstate::cannot_connect_now),
                          "Meridian in region " + worker_.cfg().region + " already holds the work of " +
                              std::to_string(fo.hold_clients) + " clients (failover.hold_clients) while " + why +
                              ": this work was refused, nothing was executed"};
    spdlog::info("[c{}] holding work for the primary: {}", id_, why);
    return std::nullopt;
  };
  bool primary_skipped = false;  // a read skips a primary it cannot reach once, for a replica
  for (;;) {
    auto decision = routing::choose_node(worker_.topology(), worker_.route_context(), request);
    if (decision.no_write_authority) {
      const bool ending = worker_.shared().authority.ending();
      const auto until = hold.until(ending ? routing::primary_hold::reason::epoch_ending
                                           : routing::primary_hold::reason::no_authority,
                                    clock::now());
      if (auto refused = refusal(until, "a failover ends the primary's epoch", write_authority_refusal(false, false))) co_return *refused;
      // A slice at a time: the deadline grows once a failover is known.
      co_await await_write_authority(std::min(until, clock::now() + hold_retry));
      continue;
    }
    if (!decision.node) {
      const auto until = hold.until(routing::primary_hold::reason::primary_lost, clock::now());
      if (auto refused = refusal(until, "no primary is known",
                                 {std::string(pr::sqlstate::connection_failure), "no primary node is available"}))
        co_return *refused;
      co_await await_primary(until);
      continue;
    }
    if (decision.confirm && replay_confirmed(*decision.node)) decision.confirm = false;
    auto& p = pool_of(*decision.node);
    auto r = co_await p.acquire(clock::now() + worker_.cfg().wait_timeout);
    if (!r) {
      if (decision.replica && unreachable(r.error())) {
        // Nothing was sent yet: the client need not notice. Skip the replica for a while.
        spdlog::warn("[c{}] replica {} unavailable, reading from elsewhere: {}", id_, p.node().name, r.error().message);
        worker_.skip_node(*decision.node);
        continue;
      }
      if (read && !primary_skipped && unreachable(r.error())) {
        // A read the region's primary would have served, and it is down: the nearest replica
        // that may serve it instead (the router skips the primary for reads a while).
        spdlog::warn("[c{}] primary {} unavailable, reading from a replica: {}", id_, p.node().name, r.error().message);
        worker_.skip_node(*decision.node);
        primary_skipped = true;
        continue;
      }
      if (!decision.replica && unreachable(r.error())) {
        // The primary refuses connections or is gone, and nothing was sent to it: the work
        // waits for it to come back or for the failover to name another.
        const auto until = hold.until(routing::primary_hold::reason::primary_lost, clock::now());
        auto refused = refusal(until, "the primary " + p.node().name + " cannot be reached", r.error());
        if (!refused) {
          co_await await_primary(until);
          continue;
        }
        spdlog::warn("[c{}] no server connection to {}: {}", id_, p.node().name, r.error().message);
        co_return *refused;
      }
      spdlog::warn("[c{}] no server connection to {}: {}", id_, p.node().name, r.error().message);
      co_return r.error();
    }
    auto sc = std::move(*r);
    if (decision.confirm) {
      // Read-your-writes: the replica must have replayed this client's last commit; wait a
      // little for it, else read from the primary.
      const bool caught_up = co_await replica_caught_up(*sc);
      worker_.shared().stats->read_your_writes_wait(caught_up);
      if (!caught_up) {
        give_back(sc);
        request.split = false;
        request.forced = routing::hint::none;
        continue;
      }
    }
    if (auto err = co_await sync_params(*sc)) {
      give_back(sc);
      // A pooled connection whose server died before its close reached Meridian: nothing of
      // the client's was sent, so the work is routed again (and held, or read elsewhere). Every
      // idle connection of the pool may be dead alike: as many tries as the pool holds.
      if (unreachable(*err) && ++lost_before_use <= p.settings().max_size + 1) {
        spdlog::info("[c{}] server connection to {} lost before use: {}", id_, p.node().name, err->message);
        continue;
      }
      co_return err;
    }
    if (!decision.replica && routing::needs_write_authority(request) && !worker_.may_write()) {
      // Authority lapsed while this waited for the connection: the work must not start.
      give_back(sc);
      continue;
    }
    if (hold.started()) held.served(*hold.started());
    attach_to(std::move(sc), decision, read, spawn_reader);
    co_return std::nullopt;
  }
}

routing::primary_hold_settings session::hold_settings() const {
  const auto& c = worker_.cfg();
  return {c.coordination.write_wait,
          c.failover.enabled() && c.failover.automatic ? c.failover.hold_timeout : std::chrono::milliseconds(0)};
}

awaitable<void> session::await_primary(clock::time_point until) {
  const auto epoch = worker_.topology().epoch;
  const auto primary = worker_.topology().primary();
  const auto retry = std::min(until, clock::now() + hold_retry);
  asio::steady_timer t(client_.get_executor());
  for (;;) {
    const auto now = clock::now();
    if (now >= until || shutdown_requested_ || client_closed_) co_return;
    const auto& topo = worker_.topology();
    if (topo.epoch != epoch || topo.primary() != primary) co_return;
    // Tried again after a while, unless the node monitor sees the primary down.
    if (now >= retry && (!primary || !topo.state(*primary).health.probed || topo.state(*primary).health.reachable)) co_return;
    t.expires_after(std::min<clock::duration>(std::chrono::milliseconds(10), until - now));
    error_code ec;
    co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

awaitable<bool> session::await_write_authority(clock::time_point deadline) {
  asio::steady_timer t(client_.get_executor());
  for (;;) {
    // The topology may move on meanwhile (a failover's new epoch): its primary is the one asked.
    if (worker_.may_write()) co_return true;
    const auto now = clock::now();
    if (now >= deadline || shutdown_requested_) co_return false;
    t.expires_after(std::min<clock::duration>(std::chrono::milliseconds(10), deadline - now));
    error_code ec;
    co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

awaitable<bool> session::hold_for_authority() {
  const auto deadline = clock::now() + worker_.cfg().coordination.write_wait;
  if (attached_ && server_state().pending) {
    // An open batch's answers wait for its Sync: a Flush has the server send them meanwhile.
    std::string flush;
    pr::fe::serialize_empty(fe_t::flush, flush);
    error_code ec;  // a failed write shows up in the server reader as a failed read too
    auto sc = attached_;
    server_writing_ = true;
    co_await sc->write(asio::buffer(flush), ec);
    server_writing_ = false;
  }
  const bool held = co_await await_write_authority(deadline);
  if (client_closed_ || ended_) co_return false;
  if (held && attached_) {
    core_.authorize();
    co_return true;
  }
  if (attached_) {
    // What was sent before the refused message is answered first (the server may be gone, or
    // stuck: then the client's session ends, nothing of the unit acknowledged).
    asio::steady_timer t(client_.get_executor());
    const auto answered_by = clock::now() + worker_.cfg().coordination.write_wait;
    while (attached_ && server_state().pending && clock::now() < answered_by && !client_closed_) {
      t.expires_after(std::chrono::milliseconds(10));
      error_code ec;
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
    }
    if (client_closed_ || ended_) co_return false;
    if (attached_ && server_state().pending) {
      co_await fatal(pr::sqlstate::cannot_connect_now, write_authority_refusal(true).message);
      co_return false;
    }
  }
  if (!attached_ || !core_.unit_open()) {
    // Nothing begun on the server: only the message's unit is refused; the server stays (a
    // pinned or session-pooled session keeps its state).
    refuse_batch(write_authority_refusal());
    co_return true;
  }
  if (core_.pinned() || mode() == pool_mode::session) {
    // Rolling back means closing the server connection, and the session's state with it: the
    // client's session ends, as a terminated backend's would.
    co_await fatal(pr::sqlstate::cannot_connect_now, write_authority_refusal(true).message);
    co_return false;
  }
  // Closed, not reused: the server rolls back the open transaction or batch.
  auto sc = attached_;
  detach();
  sc->reader.reset();
  sc->stop_watching();
  sc->owner->discard(sc);
  core_.abandon();
  refuse_batch(write_authority_refusal(true));
  co_return true;
}

server_error session::write_authority_refusal(bool rolled_back, bool log) const {
  const auto g = worker_.shared().authority.current();
  const auto now = clock::now();
  std::string since = "not yet confirmed in this topology epoch";
  if (g.until != clock::time_point{} && g.until <= now)
    since = "lapsed " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - g.until).count()) + " ms ago";
  if (log)
    spdlog::warn("[c{}] refused work that may write: no write authority over epoch {} ({})", id_, worker_.topology().epoch,
                 since);
  return server_error{std::string(pr::sqlstate::cannot_connect_now),
                      "Meridian in region " + worker_.cfg().region +
                          " may not send writes to the primary: the etcd majority has not confirmed its topology "
                          "epoch (write authority " + since + "; this region may be cut off from the others). " +
                          (rolled_back ? "The transaction was rolled back: nothing it wrote was committed" : "Nothing was executed") +
                          "; reads go on"};
}

}  // namespace meridian::proxy
