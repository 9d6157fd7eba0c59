#include "proxy/worker.hpp"

#include <spdlog/fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "protocol/md5.hpp"
#include "protocol/scram.hpp"
#include "proxy/session.hpp"

namespace meridian::proxy {

using clock = std::chrono::steady_clock;

worker::worker(shared_state& shared, unsigned index, routing::topology_ptr topology)
    : shared_(shared),
      cfg_(shared.cfg.load()),
      index_(index),
      meter_(shared.stats->worker(index)),
      topology_(std::move(topology)),
      skipped_until_(topology_->nodes.size()) {}

namespace {
std::shared_ptr<routing::function_volatility> allow_listed(const config& c) {
  auto f = std::make_shared<routing::function_volatility>();
  for (const auto& name : c.read_only_functions) f->allow(name);
  return f;
}
}  // namespace

database_routing& worker::database(const std::string& name) {
  auto it = databases_.find(name);
  if (it != databases_.end()) return *it->second;
  auto d = std::make_unique<database_routing>(cfg().classification_cache_size, allow_listed(cfg()));
  return *databases_.emplace(name, std::move(d)).first->second;
}

void worker::set_functions(const std::string& name, const std::vector<std::vector<std::string>>& rows) {
  auto f = allow_listed(cfg());
  std::vector<std::pair<std::string, std::string>> bodies;
  for (const auto& row : rows) {
    if (row.size() != 3 || row[1].size() != 1) continue;
    if (row[1] == "t") {
      f->add_trigger(row[2], row[0]);
      continue;
    }
    if (row[1] == "e") {
      f->add_event_trigger(row[0]);
      continue;
    }
    if (row[1] == "u") {
      f->add_primary_only_relation(row[2]);
      continue;
    }
    f->add(row[0], row[1][0]);
    if (row[2] == "stateful")
      f->mark_stateful(row[0]);
    else if (!row[2].empty())
      bodies.emplace_back(row[0], row[2]);
  }
  f->settle(bodies);
  auto& d = database(name);
  d.cache.set_functions(std::move(f));
  d.functions_loaded = true;
  d.loaded_at = clock::now();
  spdlog::info("worker {}: loaded volatility of {} functions for database {}", index_, rows.size(), name);
}

template <class F>
void worker::tell_others(F f) {
  for (auto* w : shared_.workers)
    if (w != this) asio::post(w->io(), [w, f] { f(*w); });
}

void worker::learn_primary_only(const std::string& database, const std::vector<std::string>& relations) {
  add_primary_only(database, relations);
  tell_others([database, relations](worker& w) { w.add_primary_only(database, relations); });
}

void worker::add_primary_only(const std::string& database_name, const std::vector<std::string>& relations) {
  auto& d = database(database_name);
  auto f = std::make_shared<routing::function_volatility>(*d.cache.functions());
  for (const auto& r : relations) f->add_primary_only_relation(r);
  d.cache.set_functions(std::move(f));
  spdlog::info("worker {}: reads of {} in database {} go to the primary from now on", index_,
               fmt::join(relations, ", "), database_name);
}

void worker::catalog_changed(const std::string& database) {
  forget_catalog(database);
  tell_others([database](worker& w) { w.forget_catalog(database); });
}

void worker::forget_catalog(const std::string& database_name) {
  auto& d = database(database_name);
  if (!d.functions_loaded) return;  // not read yet, or being read
  d.functions_loaded = false;
  // At most ten reads a second, however often replicas refuse (a function of the
  // application's that reads an unlogged table is refused every time: see the README).
  d.retry_at = std::max(d.retry_at, d.loaded_at + std::chrono::milliseconds(100));
  spdlog::info("worker {}: reading the catalog of database {} again", index_, database_name);
}

namespace {
std::string spelling_key(std::string_view name, std::string_view value) {
  std::string key;
  key.reserve(name.size() + value.size() + 1);
  key.append(name).append(1, '=').append(value);
  return key;
}
}  // namespace

std::optional<std::string> worker::server_spelling(std::string_view name, std::string_view value) const {
  if (auto it = spellings_.find(spelling_key(name, value)); it != spellings_.end()) return it->second;
  return std::nullopt;
}

void worker::learn_spelling(std::string_view name, std::string_view value, std::string spelled) {
  if (spellings_.size() >= 4096) spellings_.clear();  // clients with ever new values: start over
  spellings_.insert_or_assign(spelling_key(name, value), std::move(spelled));
}

void worker::set_topology(routing::topology_ptr t) {
  // A node whose role changed (the primary demoted or fenced, a replica promoted) gets fresh
  // server connections: the old ones served a role the node no longer has.
  // So does a node that moved to another address (a reload): its pools connect there from now on.
  std::vector<routing::node_id> changed, moved;
  for (std::size_t i = 0; i < t->states.size() && i < topology_->states.size(); ++i) {
    const routing::node_id id{static_cast<std::uint16_t>(i)};
    if (t->states[i].role != topology_->states[i].role) changed.push_back(id);
    if (t->nodes[i].host != topology_->nodes[i].host || t->nodes[i].port != topology_->nodes[i].port) moved.push_back(id);
  }
  if (t->epoch != topology_->epoch)
    spdlog::info("worker {}: topology epoch {}, primary {}", index_, t->epoch,
                 t->primary() ? t->at(*t->primary()).name : std::string("(none)"));
  if (skipped_until_.size() < t->nodes.size()) skipped_until_.resize(t->nodes.size());  // nodes added
  const auto old_primary = topology_->primary();
  topology_ = std::move(t);
  auto listed = [](const std::vector<routing::node_id>& ids, routing::node_id id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  for (auto& [key, p] : pools_) {
    if (listed(moved, key.node)) {
      p->set_node(topology_->at(key.node));
      p->drain();
    } else if (listed(changed, key.node)) {
      p->drain();
    }
  }
  // A new primary (a failover or switchover): the users and databases that had connections to
  // the old one get as many to the new one now, so that work held for it does not wait for its
  // connections to be made, several cross-region round trips each.
  const auto new_primary = topology_->primary();
  if (!old_primary || !new_primary || *old_primary == *new_primary) return;
  struct wanted {
    pool_key key;
    server_login login;
    std::size_t connections;
  };
  std::vector<wanted> warm;
  for (const auto& [key, p] : pools_) {
    const auto s = p->stats();
    if (key.node == *old_primary && s.checkouts > 0) warm.push_back({key, p->login(), std::max<std::size_t>(s.total, 1)});
  }
  for (auto& w : warm) {
    pool_key key{*new_primary, w.key.user, w.key.database};
    const bool fresh = pools_.find(key) == pools_.end();
    auto& p = pool_for(key, cfg().find_user(key.user));
    if (fresh) p.set_login(std::move(w.login));  // users found by auth.query: the proven credentials
    const auto s = p.stats();
    if (s.total >= w.connections) continue;
    spdlog::info("worker {}: {} server connection(s) to the new primary {} for user {} ({}) opened ahead", index_,
                 w.connections - s.total, topology_->at(*new_primary).name, key.user, key.database);
    p.warm(w.connections - s.total);
  }
}

void worker::resume() {
  paused_ = false;
  for (auto* t : pause_waiters_) t->cancel();
}

awaitable<bool> worker::wait_resumed(std::chrono::steady_clock::time_point deadline) {
  if (!paused_) co_return true;
  asio::steady_timer t(io_, deadline);
  pause_waiters_.push_back(&t);
  error_code ec;
  co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
  std::erase(pause_waiters_, &t);
  co_return !paused_;
}

std::size_t worker::active_transactions() const {
  std::size_t n = 0;
  for (const auto* s : sessions_)
    if (s->attached()) ++n;
  return n;
}

routing::route_context worker::route_context() const {
  const auto now = clock::now();
  return routing::route_context{cfg().region, skipped_until_, now, may_write(now)};
}

void worker::skip_node(routing::node_id node) {
  shared_.stats->replica_skipped(node);
  if (node.value < skipped_until_.size()) skipped_until_[node.value] = clock::now() + cfg().replica_retry;
}

void worker::listen() {
  const auto& c = cfg();
  tcp::endpoint ep(asio::ip::make_address(c.listen_host), c.listen_port);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  // Every worker binds the same port; the kernel spreads connections across them. A second
  // Meridian started for a rolling restart can bind it too.
  acceptor_.set_option(asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>(true));
  acceptor_.bind(ep);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  asio::co_spawn(io_, accept_loop(), asio::detached);
  asio::co_spawn(io_, sweep_loop(), asio::detached);
}

worker::~worker() {
  // A stop that did not wait for every client leaves sessions attached to a server connection
  // that holds its session as reader (server_connection::watch): part them, so that both go
  // with the handlers the io_context destroys.
  const auto left = sessions_;
  for (auto* s : left) s->drop_server_reader();
}

void worker::run() { io_.run(); }

awaitable<void> worker::accept_loop() {
  for (;;) {
    error_code ec;
    auto socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
      spdlog::warn("accept failed: {}", ec.message());
      // Out of descriptors and the like: back off briefly instead of spinning.
      asio::steady_timer t(io_, std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<session>(*this, std::move(socket))->start();
  }
}

awaitable<void> worker::sweep_loop() {
  for (;;) {
    sweep_timer_.expires_after(std::chrono::seconds(1));
    error_code ec;
    co_await sweep_timer_.async_wait(asio::redirect_error(use_awaitable, ec));
    if (ec || draining_) co_return;
    auto now = clock::now();
    for (auto& [key, p] : pools_) p->sweep(now);
  }
}

namespace {

// How Meridian logs in to servers as `user`: its server_password, else its plain secret; for
// users found by auth.query, the md5 hash or the SCRAM keys a client proved.
server_login login_for(const pool_key& key, const user_config* user) {
  server_login login;
  login.user = key.user;
  login.database = key.database;
  if (!user) return login;
  if (user->server_password) {
    login.password = user->server_password;
  } else if (protocol::is_md5_secret(user->secret)) {
    if (user->from_auth_query) login.md5_secret = user->secret;
  } else if (!user->secret.empty() && !protocol::scram_verifier::parse(user->secret)) {
    login.password = user->secret;
  }
  login.scram_keys = user->server_scram_keys;
  return login;
}

}  // namespace

pool& worker::pool_for(const pool_key& key, const user_config* user) {
  auto it = pools_.find(key);
  if (it != pools_.end()) return *it->second;
  const auto& c = cfg();
  pool_settings settings;
  settings.max_size = std::max<std::size_t>(1, c.pool_size / c.threads);
  settings.connect_timeout = c.connect_timeout;
  settings.idle_timeout = c.idle_timeout;
  settings.server_lifetime = c.server_lifetime;
  settings.max_prepared_per_server = c.max_prepared_per_server;
  settings.max_message_bytes = c.max_message_bytes;
  // Looked up at each connect, so certificates reloaded since the pool was made are used.
  settings.tls = [&shared = shared_, node = key.node.value] { return shared.tls.load()->node(node); };
  settings.meter = &meter_.pools.at(key.node.value);
  auto p = std::make_unique<pool>(io_.get_executor(), key, topology_->at(key.node), login_for(key, user), settings);
  return *pools_.emplace(key, std::move(p)).first->second;
}

void worker::refresh_logins(const user_config& user) {
  for (auto& [key, p] : pools_) {
    if (key.user != user.name) continue;
    auto login = login_for(key, &user);
    if (!(login == p->login())) p->set_login(std::move(login));
  }
}

void worker::apply_config(config_ptr c) {
  cfg_ = std::move(c);
  const auto& now = *cfg_;
  for (auto& [key, p] : pools_) {
    p->set_max_size(std::max<std::size_t>(1, now.pool_size / now.threads));
    // Listed users' credentials; users found by auth.query keep theirs (refreshed at login).
    if (const auto* user = now.find_user(key.user)) p->set_login(login_for(key, user));
  }
}

awaitable<tl::expected<user_ptr, std::string>> worker::look_up_user(std::string name) {
  if (auto hit = shared_.users.cached(name, clock::now())) co_return *hit;
  const auto& q = cfg().auth_query;
  auto primary = topology_->primary();
  if (!primary) co_return tl::unexpected(std::string("no primary node is available"));
  auto& p = pool_for(pool_key{*primary, q.user, q.database}, cfg().find_user(q.user));
  auto conn = co_await p.acquire(clock::now() + cfg().wait_timeout);
  if (!conn) co_return tl::unexpected(conn.error().message);
  auto sc = std::move(*conn);
  query_rows rows;
  const std::string sql = auth_query_sql(q.query, name);
  auto done = co_await sc->run_internal_query(sql, cfg().max_message_bytes, &rows);
  if (done && sc->tx == protocol::tx_status::idle && sc->socket.is_open()) {
    p.release(sc);
  } else {
    p.discard(sc);
  }
  if (!done) co_return tl::unexpected(done.error().message);
  auto user = user_from_rows(name, rows);
  shared_.users.store(name, user, clock::now());
  co_return user;
}

worker::login_watch worker::watch_login(session* s) {
  logins_.push_back(s);
  if (!login_timer_armed_) arm_login_timer();
  return std::prev(logins_.end());
}

void worker::arm_login_timer() {
  login_timer_armed_ = !logins_.empty();
  if (!login_timer_armed_) return;
  login_timer_.expires_at(logins_.front()->connected_at() + cfg().startup_timeout);
  login_timer_.async_wait([this](error_code ec) {
    if (ec) {
      login_timer_armed_ = false;
      return;
    }
    // Oldest first: every client whose deadline passed is at the front.
    const auto now = clock::now();
    const auto timeout = cfg().startup_timeout;
    while (!logins_.empty() && logins_.front()->connected_at() + timeout <= now) {
      auto* s = logins_.front();
      logins_.pop_front();
      s->startup_expired();
    }
    arm_login_timer();
  });
}

void worker::remove_session(session* s) {
  sessions_.erase(s);
  maybe_stop();
}

void worker::maybe_stop() {
  if (draining_ && sessions_.empty()) {
    for (auto& [key, p] : pools_) p->close_idle();
    io_.stop();
  }
}

void worker::begin_shutdown() {
  asio::post(io_, [this] {
    if (draining_) return;
    draining_ = true;
    error_code ignored;
    acceptor_.close(ignored);
    sweep_timer_.cancel();
    auto sessions = sessions_;
    for (auto* s : sessions) s->request_shutdown();
    // Transactions get shutdown_timeout to finish; then the worker stops regardless.
    auto timer = std::make_shared<asio::steady_timer>(io_, cfg().shutdown_timeout);
    timer->async_wait([this, timer](error_code ec) {
      if (!ec) {
        spdlog::warn("worker {}: shutdown timeout with {} client(s) still connected", index_, sessions_.size());
        io_.stop();
      }
    });
    maybe_stop();
  });
}

namespace {

std::string seconds_since(clock::time_point t, clock::time_point now) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(now - t).count());
}

}  // namespace

awaitable<std::vector<std::vector<std::string>>> worker::console_rows(console_command c) {
  std::vector<std::vector<std::string>> rows;
  const auto now = clock::now();
  switch (c) {
    case console_command::show_pools:
      // node, database, user, sv_active, sv_idle, sv_total, sv_max, cl_waiting, connects,
      // checkouts, wait_timeouts
      for (const auto& [key, p] : pools_) {
        const auto st = p->stats();
        rows.push_back({p->node().name, key.database, key.user, std::to_string(st.total - st.idle),
                        std::to_string(st.idle), std::to_string(st.total), std::to_string(p->settings().max_size),
                        std::to_string(st.waiting), std::to_string(st.connects), std::to_string(st.checkouts),
                        std::to_string(st.wait_timeouts)});
      }
      break;
    case console_command::show_clients:
      for (const auto* s : sessions_) rows.push_back(s->client_row());
      break;
    case console_command::show_servers:
      // node, database, user, state, client, backend_pid, age_s, idle_s
      for (const auto& [key, p] : pools_)
        for (const auto& sc : p->idle())
          rows.push_back({p->node().name, key.database, key.user, "idle", "", std::to_string(sc->key.process_id),
                          seconds_since(sc->created, now), seconds_since(sc->last_used, now)});
      for (const auto* s : sessions_)
        if (const auto& sc = s->attached_server(); sc && sc->owner)
          rows.push_back({sc->owner->node().name, s->database(), s->user(), "active", std::to_string(s->id()),
                          std::to_string(sc->key.process_id), seconds_since(sc->created, now), "0"});
      break;
    case console_command::show_nodes:
      // name, region, role, local, up, readable, lag_bytes, lag_ms, probe_ms, timeline, problem
      for (const auto& n : topology_->nodes) {
        if (n.removed) continue;
        const auto& st = topology_->state(n.id);
        const auto& h = st.health;
        rows.push_back({n.name, n.region, std::string(routing::to_string(st.role)), n.region == cfg().region ? "yes" : "no",
                        h.reachable ? "yes" : "no", h.readable ? "yes" : "no",
                        h.lag ? std::to_string(h.lag->bytes) : "", h.lag ? std::to_string(h.lag->time.count()) : "",
                        std::to_string(static_cast<double>(h.probe_latency.count()) / 1000.0),
                        std::to_string(h.timeline), h.problem});
      }
      break;
    default:
      break;
  }
  co_return rows;
}

}  // namespace meridian::proxy
