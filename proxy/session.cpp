#include "proxy/session.hpp"

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
#include "proxy/params.hpp"
#include "proxy/pool.hpp"
#include "proxy/send_now.hpp"
#include "proxy/worker.hpp"
#include "routing/router.hpp"

namespace meridian::proxy {

namespace pr = meridian::protocol;
namespace fe_t = pr::frontend_type;
namespace be_t = pr::backend_type;
using clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t max_startup_packet = 10'000;  // as PostgreSQL's MAX_STARTUP_PACKET_LENGTH
constexpr std::size_t max_auth_message = 8192;
constexpr std::size_t backlog_limit = 1u << 20;  // client output queued behind a write in progress
// Tags the Sync the session core sends to close a replica's batch before it moves.
constexpr std::uint32_t core_sync_tag = 0xfffffffeu;
// Tags the synthetic query that reads the WAL position after a write (SHOW tags count from 0).
constexpr std::uint32_t position_tag = 0xffffffffu;

std::string error_message(pr::severity sev, std::string_view code, std::string_view message) {
  std::string out;
  pr::append_error(out, sev, code, message);
  return out;
}

void append_ready(std::string& out, pr::tx_status status) { pr::be::serialize(pr::be::ready_for_query{status}, out); }

// Meridian's own settings, given at start-up or with SET: the error a bad one gets, if any.
struct setting_error {
  std::string_view sqlstate;
  std::string message;
};
std::optional<setting_error> check_meridian_setting(const std::string& name, const std::optional<std::string>& value) {
  if (name != "meridian.consistency" && name != "meridian.routing")
    return setting_error{pr::sqlstate::undefined_object, "unrecognized configuration parameter \"" + name + "\""};
  if (!value || value->empty()) return std::nullopt;  // RESET, SET … TO DEFAULT
  const bool ok = name == "meridian.routing" ? (*value == "split" || *value == "primary")
                                             : routing::parse_consistency(*value).has_value();
  if (ok) return std::nullopt;
  // Only safe characters of the value are echoed (it ends up in a SQL literal, see below).
  std::string shown;
  for (char c : value->substr(0, 64))
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == ' ') shown += c;
  const char* expected = name == "meridian.routing" ? "split or primary" : "eventual, read-your-writes or primary";
  return setting_error{pr::sqlstate::invalid_parameter_value, "invalid value for parameter \"" + name + "\": \"" +
                                                                  shown + "\" (expected " + expected + ")"};
}

// A statement that makes the server raise `e`: the error then reaches the client in its place
// among the server's answers, and ends the transaction as PostgreSQL's own would.
std::string raise_statement(const setting_error& e) {
  // The message holds only safe characters (see check_meridian_setting); quotes doubled.
  std::string message;
  for (char c : e.message) {
    message += c;
    if (c == '\'') message += c;
  }
  return "DO $meridian$BEGIN RAISE EXCEPTION USING ERRCODE = '" + std::string(e.sqlstate) + "', MESSAGE = '" + message +
         "'; END$meridian$";
}

std::string server_statement_name(std::string_view content) {
  char name[24];
  std::snprintf(name, sizeof name, "mdn_%016zx", std::hash<std::string_view>{}(content));
  return name;
}

}  // namespace

session::session(worker& w, tcp::socket socket)
    : worker_(w),
      client_(std::move(socket)),
      tls_config_(w.cfg().tls.client == client_tls::disable ? nullptr : w.shared().tls.load()->client),
      id_(w.shared().next_session_id.fetch_add(1)),
      core_(*this, routing::session_core::settings{w.cfg().max_message_bytes, false}) {
  error_code ec;
  auto ep = client_.remote_endpoint(ec);
  peer_address_ = ec ? std::string("?") : ep.address().to_string();
  peer_ = ec ? peer_address_ : peer_address_ + ":" + std::to_string(ep.port());
  worker_.add_session(this);
}

session::~session() {
  stop_login_watch();
  if (cancel_key_) worker_.shared().cancels.remove(*cancel_key_);
  if (admitted_) worker_.shared().limits.release(user_, database_);
  if (counted_) {
    worker_.shared().clients.fetch_sub(1);
    worker_.shared().stats->client_disconnected();
  }
  worker_.remove_session(this);
}

std::vector<std::string> session::client_row() const {
  // id, user, database, address, tls, state, node, connected_s, consistency
  std::string state = !logged_in_ ? "login" : attached_ ? (attached_->tx == pr::tx_status::idle ? "active" : "in transaction") : "idle";
  std::string node = attached_ && attached_->owner ? attached_->owner->node().name : "";
  const auto connected = std::chrono::duration_cast<std::chrono::seconds>(clock::now() - connected_at_).count();
  return {std::to_string(id_), user_, database_, peer_, tls_ ? "yes" : "no", std::move(state), std::move(node),
          std::to_string(connected), logged_in_ ? std::string(routing::to_string(consistency())) : ""};
}

void session::time_batch(std::string_view sql) {
  if (batch_timed_) return;
  batch_timed_ = true;
  batch_sent_ = clock::now();
  if (!tx_timed_) {
    tx_timed_ = true;
    tx_began_ = batch_sent_;
  }
  if (!batch_text_.empty()) batch_text_.clear();
  if (worker_.cfg().slow_statement.count() <= 0 || !worker_.cfg().log_statement_text) return;
  auto cut = std::min(sql.size(), worker_.cfg().log_statement_max);
  // Not in the middle of a UTF-8 character (continuation bytes are 10xxxxxx).
  while (cut > 0 && cut < sql.size() && (static_cast<unsigned char>(sql[cut]) & 0xC0) == 0x80) --cut;
  batch_text_ = sql.substr(0, cut);
}

void session::batch_done(const server_connection& sc) {
  if (!batch_timed_) return;
  batch_timed_ = false;
  const auto now = clock::now();
  auto& meter = worker_.meter();
  meter.queries[sc.node.value].observe(now - batch_sent_);
  if (sc.tx == pr::tx_status::idle && tx_timed_) {
    tx_timed_ = false;
    meter.transactions[sc.node.value].observe(now - tx_began_);
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(now - batch_sent_);
  if (worker_.cfg().slow_statement.count() <= 0 || took < worker_.cfg().slow_statement) return;
  const std::string node = sc.owner ? sc.owner->node().name : "?";
  if (batch_text_.empty()) {
    spdlog::warn("[c{}] slow statement: {} ms on {} (user {}, database {})", id_, took.count(), node, user_, database_);
  } else {
    spdlog::warn("[c{}] slow statement: {} ms on {} (user {}, database {}): {}", id_, took.count(), node, user_, database_,
                 batch_text_);
  }
}

void session::start() {
  login_watch_ = worker_.watch_login(this);
  // Nothing runs for the client until it speaks: a connection that has not sent its start-up
  // packet yet holds its session and this wait, no coroutine frame (so a burst of connections
  // does not leave a heap of frames behind, and one that never speaks costs little).
  client_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](error_code ec) {
    if (ec) return self->end();
    asio::co_spawn(self->client_.get_executor(), run(self), asio::detached);
  });
}

void session::stop_login_watch() {
  if (!login_watch_) return;
  worker_.unwatch_login(*login_watch_);
  login_watch_.reset();
}

void session::startup_expired() {
  login_watch_.reset();  // the worker took it off its list
  spdlog::info("[c{}] start-up timeout", id_);
  close_client();
}

pool_mode session::mode() const {
  if (user_cfg_ && user_cfg_->mode) return *user_cfg_->mode;
  return worker_.cfg().mode;
}

void session::close_client() {
  if (client_closed_) return;
  client_closed_ = true;
  error_code ignored;
  client_.shutdown(tcp::socket::shutdown_both, ignored);
  client_.close(ignored);
  if (drained_) drained_->cancel();
}

awaitable<void> session::run(std::shared_ptr<session> self) {
  spdlog::debug("[c{}] connection from {}", self->id_, self->peer_);
  if (!co_await self->startup()) {
    self->end();
    co_return;
  }
  spdlog::info("[c{}] login user={} database={} from {}", self->id_, self->user_, self->database_, self->peer_);
  self->logged_in_ = true;
  self->stop_login_watch();
  self->core_.hold_server(self->mode() == pool_mode::session);
  // The query phase runs on its own, not inside this coroutine: an idle client then holds no
  // coroutine frame at all, only its session and the pending wait (see serve()).
  if (self->database_ == console_database) {
    asio::co_spawn(self->client_.get_executor(), self->serve_console(),
                   [self](const std::exception_ptr&) { self->end(); });
  } else {
    self->spawn_serve(false);
  }
}

void session::end() {
  ended_ = true;
  stop_login_watch();
  if (attached_) {
    // Wake the server reader, which returns the connection to its pool or closes it.
    error_code ignored;
    attached_->socket.cancel(ignored);
  }
  close_client();
  spdlog::debug("[c{}] closed", id_);
}

void session::drop_server_reader() {
  if (!attached_) return;
  auto sc = attached_;
  sc->reader.reset();  // may end this session: nothing of it is touched after
}

// ---------------------------------------------------------------------------------------------
// Start-up phase

awaitable<bool> session::read_startup_packet(pr::startup_message& out_msg, std::string& storage) {
  for (;;) {
    auto r = pr::next_startup_frame(in_.readable(), max_startup_packet);
    if (r.status == pr::frame_status::invalid) {
      // PostgreSQL only logs an invalid length and closes (ProcessStartupPacket): node-postgres'
      // connect() then end() sends Terminate first, and must see the same quiet end here.
      spdlog::info("[c{}] invalid length of startup packet ({}) from {}", id_, r.reason, peer_);
      close_client();
      co_return false;
    }
    if (r.status == pr::frame_status::need_more) {
      in_.reserve(r.needed);
      if (!co_await read_client()) co_return false;  // gone (or the start-up timer closed it)
      continue;
    }
    // Parsed from a copy: a StartupMessage's parameter views must outlive the receive buffer.
    storage.assign(r.msg.body);
    in_.consume(r.msg.wire_size);
    auto packet = pr::parse_startup_packet(storage);
    if (!packet) {
      co_await fatal(packet.error().sqlstate, packet.error().message);
      co_return false;
    }
    switch (packet->kind) {
      case pr::startup_kind::ssl_request:
      case pr::startup_kind::gssenc_request: {
        // A client must not send anything before reading the answer (CVE-2021-23222).
        if (!in_.empty()) {
          co_await fatal(pr::sqlstate::protocol_violation, "received unencrypted data after SSL request");
          co_return false;
        }
        if (tls_) {
          co_await fatal(pr::sqlstate::protocol_violation, "SSLRequest over a connection already encrypted");
          co_return false;
        }
        const bool offer = packet->kind == pr::startup_kind::ssl_request && tls_config_;
        const std::string answer(offer ? "S" : "N");
        if (!co_await write_client(answer)) co_return false;
        if (offer && !co_await start_tls()) co_return false;
        continue;
      }
      case pr::startup_kind::cancel_request: {
        auto key = cancel_key{packet->cancel.process_id, packet->cancel.secret_key};
        if (auto target = worker_.shared().cancels.find(key)) {
          asio::post(target->executor, [weak = target->target] {
            if (auto s = weak.lock()) s->cancel_running_query();
          });
        } else {
          spdlog::info("[c{}] cancel request with an unknown key ignored", id_);
        }
        close_client();
        co_return false;
      }
      case pr::startup_kind::startup:
        if (!tls_ && worker_.cfg().tls.client == client_tls::required) {
          co_await fatal(pr::sqlstate::invalid_authorization,
                         "this Meridian accepts only encrypted connections: connect with sslmode=require or stronger");
          co_return false;
        }
        out_msg = std::move(packet->startup);
        co_return true;
    }
  }
}

awaitable<bool> session::startup() {
  // Start-up and authentication must finish in time (limits.startup_timeout), or the worker
  // closes the socket under them (see start()).
  pr::startup_message msg;
  std::string storage;
  if (!co_await read_startup_packet(msg, storage)) co_return false;

  user_ = std::string(msg.get("user"));
  database_ = std::string(msg.get("database"));
  if (database_.empty()) database_ = user_;

  std::string response;
  pr::be::negotiate_protocol_version negotiate;
  param_map wanted;
  for (const auto& [k, v] : msg.parameters) {
    if (k == "user" || k == "database") continue;
    if (k.substr(0, 5) == "_pq_.") {
      negotiate.unrecognized_options.push_back(k);
      continue;
    }
    if (k == "replication") {
      if (v == "false" || v == "0" || v == "off" || v == "no") continue;
      co_await fatal(pr::sqlstate::feature_not_supported, "replication connections are not supported by Meridian");
      co_return false;
    }
    if (k == "options") {
      if (!parse_startup_options(v, wanted)) {
        co_await fatal(pr::sqlstate::feature_not_supported,
                       "Meridian supports only -c name=value settings in the options startup parameter");
        co_return false;
      }
      continue;
    }
    if (!is_valid_parameter_name(k)) {
      co_await fatal(pr::sqlstate::protocol_violation, "invalid startup parameter name");
      co_return false;
    }
    wanted[lower(k)] = std::string(v);
  }
  // Meridian's own settings (given as startup parameters, or as -c meridian.…=… in options,
  // which is how libpq passes them) are consumed here and never sent to a server.
  for (auto it = wanted.begin(); it != wanted.end();) {
    if (it->first.rfind("meridian.", 0) != 0) {
      ++it;
      continue;
    }
    if (auto bad = check_meridian_setting(it->first, it->second)) {
      co_await fatal(bad->sqlstate, bad->message);
      co_return false;
    }
    meridian_settings_[it->first] = it->second;
    it = wanted.erase(it);
  }
  wanted_ = startup_params_ = worker_.parameter_sets().intern(std::move(wanted));
  startup_meridian_settings_ = meridian_settings_;
  if (pr::protocol_minor(msg.protocol_version) > 0 || !negotiate.unrecognized_options.empty()) {
    negotiate.newest_minor = 0;
    pr::be::serialize(negotiate, response);
    if (!co_await write_client(response)) co_return false;
  }

  if (shutdown_requested_) {  // draining, and this connection is past its grace (request_shutdown)
    co_await fatal(pr::sqlstate::cannot_connect_now, "the database system is shutting down");
    co_return false;
  }
  counted_ = true;
  worker_.shared().stats->client_connected();
  if (worker_.shared().clients.fetch_add(1) >= worker_.cfg().max_clients) {
    co_await fatal(pr::sqlstate::too_many_connections, "sorry, too many clients already");
    co_return false;
  }
  user_cfg_ = worker_.cfg().find_user(user_);
  if (!user_cfg_ && worker_.cfg().auth_query.enabled()) {
    auto found = co_await worker_.look_up_user(user_);
    if (!found) {
      spdlog::error("[c{}] auth query for user \"{}\" failed: {}", id_, user_, found.error());
      co_await fatal(pr::sqlstate::connection_failure, "could not look up the user's credentials");
      co_return false;
    }
    looked_up_user_ = std::move(*found);  // null: no such user, which fails like a wrong password
    user_cfg_ = looked_up_user_.get();
  }
  default_consistency_ = worker_.cfg().consistency_for(user_cfg_, database_);

  if (auto locked = worker_.shared().logins.locked_out(peer_address_, user_, clock::now())) {
    spdlog::warn("[c{}] login of user \"{}\" from {} refused: locked out {} ms more after repeated failures", id_, user_,
                 peer_, locked->count());
    co_await fatal(pr::sqlstate::invalid_authorization, "too many failed authentication attempts for user \"" + user_ +
                                                            "\" from this address; try again in " +
                                                            std::to_string((locked->count() + 999) / 1000) + " s");
    co_return false;
  }
  if (!co_await authenticate()) co_return false;
  worker_.shared().logins.succeeded(peer_address_, user_);
  if (looked_up_user_ && proven_keys_) {
    // With these keys the pools log in to the servers as this user.
    looked_up_user_ = worker_.shared().users.with_keys(looked_up_user_, *proven_keys_);
    user_cfg_ = looked_up_user_.get();
  }
  // A looked-up user's credentials may have changed since their pools were made (a new secret,
  // newly proven keys): the pools take them now, once per login rather than per transaction.
  if (looked_up_user_) worker_.refresh_logins(*looked_up_user_);
  if (auto refused = worker_.shared().limits.admit(user_, database_, worker_.cfg().max_clients_per_user,
                                                   worker_.cfg().max_clients_per_database)) {
    co_await fatal(pr::sqlstate::too_many_connections, *refused);
    co_return false;
  }
  admitted_ = true;

  if (database_ == console_database) {
    const auto& admins = worker_.cfg().admin_users;
    if (std::find(admins.begin(), admins.end(), user_) == admins.end() || !worker_.console()) {
      co_await fatal(pr::sqlstate::invalid_authorization, "user \"" + user_ + "\" may not use the admin console");
      co_return false;
    }
    response.clear();
    for (const auto& [k, v] : std::initializer_list<std::pair<std::string_view, std::string_view>>{
             {"server_version", "15.0 (Meridian console)"}, {"server_encoding", "UTF8"}, {"client_encoding", "UTF8"},
             {"DateStyle", "ISO, MDY"}, {"integer_datetimes", "on"}, {"standard_conforming_strings", "on"},
             {"TimeZone", "UTC"}, {"application_name", ""}})
      pr::be::serialize(pr::be::parameter_status{k, v}, response);
    cancel_key_ = worker_.shared().cancels.add(weak_from_this(), client_.get_executor());
    pr::be::serialize(pr::be::backend_key_data{cancel_key_->process_id, cancel_key_->secret_key}, response);
    append_ready(response, pr::tx_status::idle);
    co_return co_await write_client(response);
  }

  // Greet the client with the server's parameters. A pool that has not met its server yet
  // connects now, which also proves the database and server credentials work.
  auto primary = worker_.topology().primary();
  if (!primary) {
    co_await fatal(pr::sqlstate::connection_failure, "no primary node is available");
    co_return false;
  }
  pool* params_pool = &pool_of(*primary);
  if (!params_pool->server_params() || mode() == pool_mode::session) {
    // Session pooling holds one connection for the whole session: the primary's, which will
    // carry writes, so it needs write authority. Under transaction pooling the connection only
    // tells the server's parameters and goes back to the pool: a read, which needs none (a
    // region cut off from the majority still lets clients in to read).
    const auto request = mode() == pool_mode::session
                             ? routing::route_request{routing::target::primary, routing::hint::none, false, {}}
                             : routing::route_request{routing::target::any, routing::hint::primary, false, {}};
    auto err = co_await attach(request, mode() == pool_mode::session);
    if (err) {
      co_await fatal(err->sqlstate, err->message);
      co_return false;
    }
    // The topology may have moved on while attaching (a new epoch, another primary).
    params_pool = attached_->owner;
    if (mode() == pool_mode::transaction) {
      auto sc = attached_;
      detach();
      sc->owner->release(sc);
    }
  }
  if (!params_pool->server_params()) {
    co_await fatal(pr::sqlstate::connection_failure, "the primary's server parameters are not known yet");
    co_return false;
  }

  response.clear();
  for (const auto& [k, v] : *params_pool->server_params()) {
    std::string_view value = v;
    if (auto it = wanted_->find(k); it != wanted_->end()) value = it->second;
    // Meridian as a whole accepts writes, whichever node answers a given query.
    if (k == "in_hot_standby") value = "off";
    pr::be::serialize(pr::be::parameter_status{canonical_parameter_name(k), value}, response);
  }
  cancel_key_ = worker_.shared().cancels.add(weak_from_this(), client_.get_executor());
  pr::be::serialize(pr::be::backend_key_data{cancel_key_->process_id, cancel_key_->secret_key}, response);
  append_ready(response, pr::tx_status::idle);
  co_return co_await write_client(response);
}

awaitable<bool> session::authenticate() {
  std::optional<std::string> channel_binding;
  if (tls_) channel_binding = tls_config_->end_point_hash;
  client_authenticator auth(worker_.cfg().auth, user_cfg_, user_, std::move(channel_binding));
  auto step = auth.start();
  for (;;) {
    if (!step.to_client.empty() && !co_await write_client(step.to_client)) co_return false;
    if (step.outcome == client_authenticator::state::succeeded) {
      proven_keys_ = auth.proven_keys();
      co_return true;
    }
    if (step.outcome == client_authenticator::state::failed) {
      spdlog::warn("[c{}] authentication failed for user \"{}\" from {}: {}", id_, user_, peer_, step.log_reason);
      // The answer waits (longer after each failure in a row), so guessing stays slow.
      const auto delay = worker_.shared().logins.failed(peer_address_, user_, clock::now());
      if (delay.count() > 0) {
        asio::steady_timer wait(client_.get_executor(), delay);
        error_code ec;
        co_await wait.async_wait(asio::redirect_error(use_awaitable, ec));
      }
      co_await fatal(step.sqlstate, step.error_message);
      co_return false;
    }
    // Read one typed message.
    for (;;) {
      auto r = pr::next_frame(in_.readable(), max_auth_message);
      if (r.status == pr::frame_status::invalid) {
        const std::string why = std::string("invalid authentication message: ") + r.reason;
        co_await fatal(pr::sqlstate::protocol_violation, why);
        co_return false;
      }
      if (r.status == pr::frame_status::complete) {
        step = auth.on_message(r.msg.type, r.msg.body);
        in_.consume(r.msg.wire_size);
        break;
      }
      in_.reserve(r.needed);
      if (!co_await read_client()) co_return false;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Query phase: client → server

session::client_frame session::next_client_frame(std::size_t max_message) {
  using st = client_frame::status;
  // The type byte is judged at once, as PostgreSQL does: a stray start-up packet (an
  // SSLRequest after start-up) must not leave the client waiting on a nonsense length.
  if (!in_.empty() && !fe_t::known(in_.readable()[0])) {
    violation_ = "invalid frontend message type " + std::to_string(static_cast<unsigned char>(in_.readable()[0]));
    return {st::violation, {}};
  }
  auto r = pr::next_frame(in_.readable(), max_message);
  if (r.status == pr::frame_status::invalid) {
    violation_ = std::string("invalid message: ") + r.reason;
    return {st::violation, {}};
  }
  if (r.status == pr::frame_status::need_more) {
    in_.reserve(r.needed);
    return {st::need_more, {}};
  }
  return {st::ready, r.msg};
}

session::client_step session::take_client_messages(std::size_t max_message) {
  using step_kind = routing::session_core::step_kind;
  for (;;) {
    if (skipping_until_sync_) {
      // Our own error ended this batch: like PostgreSQL, ignore everything until Sync.
      const auto f = next_client_frame(max_message);
      if (f.state == client_frame::status::violation) return {client_step::kind::violation, {}};
      if (f.state == client_frame::status::need_more) return {client_step::kind::read_more, {}};
      if (f.msg.type == fe_t::terminate) return {client_step::kind::terminate, {}};
      if (f.msg.type == fe_t::sync) {
        skipping_until_sync_ = false;
        append_ready(client_out_, pr::tx_status::idle);
      }
      in_.consume(f.msg.wire_size);
      core_.forget_ahead();
      continue;
    }
    // The session core says what becomes of the message in front (routing/session_core.hpp).
    auto st = core_.next(in_.readable(), server_state());
    switch (st.kind) {
      case step_kind::need_more:
      case step_kind::violation: {
        // The buffer is sized for the message, and a violation worded, as PostgreSQL words it.
        if (next_client_frame(max_message).state == client_frame::status::violation)
          return {client_step::kind::violation, {}};
        if (st.kind == step_kind::need_more) return {client_step::kind::read_more, {}};
        violation_ = st.why;
        return {client_step::kind::violation, {}};
      }
      case step_kind::terminate:
        return {client_step::kind::terminate, {}};
      case step_kind::drop:
        in_.consume(st.length);
        continue;
      case step_kind::answer_ready:
        // What was left of a batch the replica failed is skipped: its Sync is answered here.
        append_ready(client_out_, pr::tx_status::idle);
        in_.consume(st.length);
        continue;
      case step_kind::attach: {
        // The common case: an idle connection at hand, nothing to wait for, or a place in the
        // pool's line. Else attach() does what must be waited for.
        const auto a = attach_now(st.request);
        if (a == attaching::queued) return {client_step::kind::queued, {}};
        if (a == attaching::slow) return {client_step::kind::attach, st.request};
        continue;
      }
      case step_kind::release:
        release_attached();
        continue;
      case step_kind::send_sync: {
        // A replica's batch that must move to the primary: closed on the replica first.
        auto& sc = *attached_;
        pr::fe::serialize_empty(fe_t::sync, server_out_);
        sc.pipeline.sent(pr::pending_request{pr::request_kind::sync, true, false, core_sync_tag});
        sc.batch_open = false;
        continue;
      }
      case step_kind::wait_server:
        return {client_step::kind::wait_server, {}};

      case step_kind::authorize:
        // One clock reading per message that may write past its unit's checkout, or commits.
        if (!worker_.may_write()) return {client_step::kind::authorize, {}};
        st = core_.forward_authorized();
        [[fallthrough]];
      case step_kind::forward: {
        const auto data = in_.readable();
        const pr::frame m{data[0], data.substr(pr::typed_header_size, st.length - pr::typed_header_size), st.length};
        if (tracing())  // spdlog::trace does work even when filtered
          spdlog::trace("[c{}] client message '{}' ({} bytes)", id_, m.type, m.wire_size);
        if (!forward_client_message(m, st.statement ? &st.statement->cls : nullptr)) {
          return {client_step::kind::violation, {}};
        }
        in_.consume(m.wire_size);
        continue;
      }
    }
  }
}

void session::refuse_batch(const server_error& err) {
  const auto max_message = worker_.cfg().max_message_bytes;
  const char type = in_.readable()[0];
  pr::append_error(client_out_, pr::severity::error, err.sqlstate, err.message);
  worker_.meter().errors.count(error_meter::origin::meridian, err.sqlstate);
  if (type == fe_t::query || type == fe_t::function_call || type == fe_t::sync) {
    append_ready(client_out_, pr::tx_status::idle);
  } else {
    skipping_until_sync_ = true;
  }
  in_.consume(pr::next_frame(in_.readable(), max_message).msg.wire_size);
  core_.forget_ahead();
}

awaitable<bool> session::serve(bool client_gone) {
  if (client_gone) {
    co_await client_left();
    co_return false;
  }
  const auto max_message = worker_.cfg().max_message_bytes;
  for (;;) {
    bool wait_server = false;
    bool authorize = false;
    for (;;) {
      const auto step = take_client_messages(max_message);
      wait_server = step.what == client_step::kind::wait_server;
      authorize = step.what == client_step::kind::authorize;
      if (step.what == client_step::kind::read_more || wait_server || authorize) break;
      if (step.what == client_step::kind::queued) co_return true;  // on_handover goes on
      if (step.what == client_step::kind::terminate) co_return false;
      if (step.what == client_step::kind::violation) {
        co_await fatal(pr::sqlstate::protocol_violation, violation_);
        co_return false;
      }
      // The next message needs a server, and getting one means waiting.
      const auto err = co_await attach(step.request, true);
      if (err) {
        // The message that asked for it is answered with the error (its batch skipped).
        refuse_batch(*err);
      }
    }

    // Locally answered requests go out before what they precede reaches the server.
    if (!client_out_.empty()) {
      if (!co_await write_client(client_out_)) co_return false;
      client_out_.clear();
    }
    if (!send_server_now()) {
      // The socket is full (or the stream is TLS): the rest, waiting.
      auto sc = attached_;
      server_writing_ = true;
      error_code ec;  // a failed write shows up in the server reader as a failed read too
      auto rest = asio::buffer(server_out_);
      co_await sc->write(rest, ec);
      server_writing_ = false;
      server_out_.clear();
    }
    if (shutdown_requested_ && !attached_) {
      co_await fatal(pr::sqlstate::admin_shutdown, "terminating connection due to administrator command");
      co_return false;
    }
    if (client_closed_) co_return false;
    if (authorize) {
      if (!co_await hold_for_authority()) co_return false;
      continue;
    }
    if (wait_server && attached_) {
      // The next message waits for the server's answers: relayed() takes the turn up again.
      waiting_server_ = true;
      co_return true;
    }

    if (!tls_) {
      // A plaintext client's next message is waited for by a completion handler, which also
      // handles the common turn without a coroutine (serve_quick): this one ends here.
      wait_client();
      co_return true;
    }
    if (!co_await read_client()) {
      co_await client_left();
      co_return false;
    }
  }
}

awaitable<void> session::client_left() {
  // The wait for the client ended without a message: it left, or Meridian woke it to end it.
  if (idle_in_tx_expired_) {
    spdlog::info("[c{}] idle in transaction longer than {} ms: ended", id_, worker_.cfg().idle_in_transaction_timeout.count());
    if (attached_) attached_->tainted = true;  // closed, not reused: the server rolls back
    co_await fatal(pr::sqlstate::idle_in_transaction_timeout, "terminating connection due to idle-in-transaction timeout");
    co_return;
  }
  if (shutdown_requested_ && !attached_)
    co_await fatal(pr::sqlstate::admin_shutdown, "terminating connection due to administrator command");
}

void session::spawn_serve(bool client_gone) {
  auto self = shared_from_this();
  asio::co_spawn(client_.get_executor(), serve(client_gone), [self](const std::exception_ptr&, bool waiting) {
    if (!waiting) self->end();
  });
}

void session::wait_client() {
  in_.lend(worker_.client_buffers());  // only while empty: a partial message keeps its buffer
  if (!client_drained_) {
    // The last read filled its buffer: more may be waiting, and no readiness event would say so.
    asio::post(client_.get_executor(), [self = shared_from_this()] { self->on_client_readable({}); });
    return;
  }
  // Already waiting (not expected): the pending wait serves this one too.
  client_wait_.wait(client_, shared_from_this(),
                    [](void* self, error_code ec, std::size_t) { static_cast<session*>(self)->on_client_readable(ec); });
}

void session::on_client_readable(error_code ec) {
  const auto r = ec ? received::gone : receive_client();
  if (r == received::nothing) return wait_client();
  if (r == received::gone) return spawn_serve(true);
  continue_turn();
}

void session::continue_turn() {
  turn next = turn::slow;
  try {
    next = serve_quick();
  } catch (const std::exception& e) {
    spdlog::error("[c{}] ended: {}", id_, e.what());
    return end();
  }
  if (next == turn::wait_client) return wait_client();
  if (next == turn::wait_server) waiting_server_ = true;  // relayed() takes the turn up again
  if (next == turn::slow) spawn_serve(false);
}

session::turn session::serve_quick() {
  const auto step = take_client_messages(worker_.cfg().max_message_bytes);
  // In a pool's line: local answers wait with the batch (they go out before its answer).
  if (step.what == client_step::kind::queued) return turn::queued;
  // Waiting for a server, an error to send, Terminate, local answers to write: serve() does it
  // (it takes the same messages up again, nothing of them consumed).
  const bool wait_server = step.what == client_step::kind::wait_server && attached_;
  if ((step.what != client_step::kind::read_more && !wait_server) || !client_out_.empty()) return turn::slow;
  if (!send_server_now()) return turn::slow;  // serve() writes the rest
  if (wait_server) return turn::wait_server;
  return !(shutdown_requested_ && !attached_) && !client_closed_ ? turn::wait_client : turn::slow;
}

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
               h.error->sqlstate == pr::sqlstate::connection_failure && read_skips_ < 2) {
      // A read whose node could not be reached, as attach() handles it: nothing was sent yet,
      // so the node is skipped a while and the turn routes the read again, elsewhere.
      ++read_skips_;
      spdlog::warn("[c{}] {} unavailable, reading from elsewhere: {}", id_,
                   worker_.topology().at(*queued_.decision.node).name, h.error->message);
      worker_.skip_node(*queued_.decision.node);
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
    refuse_batch(*err);
  } else {
    attach_to(std::move(sc), queued_.decision, queued_.read, true);
  }
  co_return co_await serve(false);
}

bool session::send_server_now() {
  if (server_out_.empty()) return true;
  if (!attached_) {
    server_out_.clear();
    return true;
  }
  if (attached_->tls) return false;
  error_code ec;  // a failed write shows up in the server reader as a failed read too
  const auto sent = send_now(attached_->socket.native_handle(), server_out_.data(), server_out_.size(), ec);
  if (!ec && sent < server_out_.size()) {
    server_out_.erase(0, sent);
    return false;
  }
  server_out_.clear();
  return true;
}

awaitable<bool> session::start_tls() {
  tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(client_, tls_config_->context);
  error_code ec;
  // Under the start-up timer: a client that stalls the handshake is closed with the rest.
  co_await tls_->async_handshake(asio::ssl::stream_base::server, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    spdlog::info("[c{}] TLS handshake with {} failed: {}", id_, peer_, ec.message());
    close_client();
    co_return false;
  }
  spdlog::debug("[c{}] TLS {} {}", id_, SSL_get_version(tls_->native_handle()), SSL_get_cipher(tls_->native_handle()));
  worker_.shared().stats->tls_handshake();
  co_return true;
}

void session::arm_idle_in_transaction(const server_connection& sc) {
  const auto timeout = worker_.cfg().idle_in_transaction_timeout;
  if (timeout.count() == 0 || sc.tx == pr::tx_status::idle || !sc.pipeline.empty()) return;
  idle_in_tx_armed_ = true;
  if (!idle_in_tx_) idle_in_tx_ = std::make_unique<asio::steady_timer>(client_.get_executor());
  idle_in_tx_->expires_after(timeout);
  idle_in_tx_->async_wait([weak = weak_from_this()](error_code ec) {
    if (ec) return;
    if (auto s = weak.lock()) {
      s->idle_in_tx_expired_ = true;
      error_code ignored;
      s->client_.cancel(ignored);  // ends the wait for the client's next message
    }
  });
}

awaitable<bool> session::read_client() {
  if (tls_) {
    in_.borrow(worker_.client_buffers());
    error_code ec;
    const auto n =
        co_await tls_->async_read_some(asio::buffer(in_.write_ptr(), in_.writable()), asio::redirect_error(use_awaitable, ec));
    if (ec) co_return false;
    client_spoke(n);
    co_return true;
  }
  for (;;) {
    // What the client sent may be there already (the start-up phase reads right after the
    // client spoke): read it before waiting, and the login runs through without suspending.
    const auto got = receive_client();
    if (got != received::nothing) co_return got == received::bytes;
    in_.lend(worker_.client_buffers());  // only while empty: a partial message keeps its buffer
    error_code ec;
    co_await client_.async_wait(tcp::socket::wait_read, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return false;
  }
}

session::received session::receive_client() {
  in_.borrow(worker_.client_buffers());
  const auto n = ::recv(client_.native_handle(), in_.write_ptr(), in_.writable(), MSG_DONTWAIT);
  if (n > 0) {
    client_drained_ = static_cast<std::size_t>(n) < in_.writable();  // short: nothing was left
    client_spoke(static_cast<std::size_t>(n));
    return received::bytes;
  }
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
    client_drained_ = true;
    return received::nothing;
  }
  if (n < 0 && errno == EINTR) {
    client_drained_ = false;  // not known: read again before waiting
    return received::nothing;
  }
  return received::gone;  // closed by the client (0) or broken
}

void session::client_spoke(std::size_t n) {
  in_.commit(n);
  if (idle_in_tx_armed_) {
    idle_in_tx_armed_ = false;
    idle_in_tx_->cancel();
  }
}

bool session::forward_client_message(const pr::frame& m, const routing::classification* classified) {
  auto& sc = *attached_;
  auto& pl = sc.pipeline;
  auto fail = [&](const pr::protocol_error& e) {
    violation_ = e.message;
    return false;
  };
  auto raw = [&] { server_out_.append(m.body.data() - pr::typed_header_size, m.wire_size); };

  // After an error the server skips everything up to Sync; so does Meridian, without sending it.
  if (pl.discarding() && m.type != fe_t::sync) {
    if (auto v = pr::fe::validate(m.type, m.body); !v) return fail(v.error());
    return true;
  }

  switch (m.type) {
    case fe_t::query: {
      auto q = pr::fe::parse_query(m.body);
      if (!q) return fail(q.error());
      time_batch(q->sql);
      const auto& cls = *classified;  // the session core classified it (step::statement)
      if (cls.sets_meridian || cls.shows_meridian) {
        if (auto instead = meridian_statement(q->sql, cls); !instead.empty()) {
          pr::fe::serialize(pr::fe::query{instead}, server_out_);
          pl.sent(fe_t::query);
          break;
        }
      }
      if (cls.deallocates) {
        if (auto instead = deallocate_instead(sc, q->sql)) {
          pr::fe::serialize(pr::fe::query{*instead}, server_out_);
          pl.sent(fe_t::query);
          break;
        }
      }
      note_statement(sc, cls.where);
      note_unseen_state(sc, cls);
      raw();
      pl.sent(fe_t::query);
      if (!cls.sets_parameters.empty()) note_settings(sc, cls);
      if (!deferred_shows_.empty()) flush_shows(sc, cls.tx);
      if (cls.copy_in) {
        capture_after_copy_ = tx_wrote_;  // the position is asked for once the COPY data is sent
      } else {
        capture_commit_position(sc);
      }
      break;
    }
    case fe_t::parse: {
      auto p = pr::fe::parse_parse(m.body);
      if (!p) return fail(p.error());
      time_batch(p->sql);
      sc.batch_open = true;
      const auto& cls = *classified;
      if (cls.sets_meridian || cls.shows_meridian) {
        if (auto instead = meridian_statement(p->sql, cls); !instead.empty()) {
          pr::fe::serialize(pr::fe::parse{p->statement, instead, {}}, server_out_);
          pl.sent(fe_t::parse);
          break;
        }
      }
      if (cls.copy_in) batch_copy_in_ = true;
      note_unseen_state(sc, cls);
      // A SET through the extended protocol (JDBC sends its own at start-up) is followed up
      // after the batch's Sync.
      if (!cls.sets_parameters.empty()) note_settings(sc, cls);
      if (cls.tx != routing::tx_effect::none) batch_tx_ = cls.tx;
      if (p->statement.empty()) {
        unnamed_class_ = cls.where;
        // (An unnamed statement runs at once, as psycopg's DEALLOCATE of its cache's statements
        // does; a named one that deallocates when executed later goes to the server as it is.)
        std::optional<std::string> instead;
        if (cls.deallocates) instead = deallocate_instead(sc, p->sql);
        if (instead) {
          pr::fe::serialize(pr::fe::parse{p->statement, *instead, {}}, server_out_);
        } else {
          raw();
        }
        pl.sent(fe_t::parse);
        break;
      }
      // Statements are renamed by content, so every client preparing the same text shares one
      // server-side statement, and a name never collides with another client's.
      auto content = m.body.substr(p->statement.size() + 1);
      auto& st = statements_[std::string(p->statement)];
      st.cls = cls;
      st.hint = routing::leading_hint(p->sql);
      st.server_name = server_statement_name(content);
      st.parse_message.clear();
      {
        pr::message_writer w(st.parse_message, fe_t::parse);
        w.cstring(st.server_name).bytes(content);
      }
      if (sc.statements.touch(st.server_name)) {
        pl.sent(pr::pending_request{pr::request_kind::parse, false, true});  // answered by Meridian
      } else {
        prepare_on(sc, st, false);
      }
      break;
    }
    case fe_t::bind: {
      auto b = pr::fe::parse_bind(m.body);
      if (!b) return fail(b.error());
      time_batch({});  // a prepared statement run again: timed, its text not at hand
      sc.batch_open = true;
      auto it = b->statement.empty() ? statements_.end() : statements_.find(b->statement);
      note_statement(sc, it != statements_.end() ? it->second.cls.where : unnamed_class_);
      if (it != statements_.end()) note_unseen_state(sc, it->second.cls);
      if (it == statements_.end()) {
        raw();  // unnamed, or unknown: the server reports 26000 itself
      } else {
        ensure_prepared(sc, it->second);
        pr::fe::serialize(pr::fe::bind{b->portal, it->second.server_name, b->tail}, server_out_);
      }
      pl.sent(fe_t::bind);
      break;
    }
    case fe_t::describe: {
      auto d = pr::fe::parse_describe(m.body);
      if (!d) return fail(d.error());
      sc.batch_open = true;
      auto it = (d->kind == pr::fe::target_kind::statement && !d->name.empty())
                    ? statements_.find(d->name)
                    : statements_.end();
      if (it == statements_.end()) {
        raw();
      } else {
        ensure_prepared(sc, it->second);
        pr::fe::serialize(pr::fe::describe{pr::fe::target_kind::statement, it->second.server_name}, server_out_);
      }
      pl.sent(fe_t::describe, static_cast<char>(d->kind));
      break;
    }
    case fe_t::close: {
      auto c = pr::fe::parse_close(m.body);
      if (!c) return fail(c.error());
      sc.batch_open = true;
      if (c->kind == pr::fe::target_kind::statement && !c->name.empty()) {
        // The server-side statement may serve other clients; only this client's name goes away.
        statements_.erase(std::string(c->name));
        pl.sent(pr::pending_request{pr::request_kind::close, false, true});
      } else {
        raw();
        pl.sent(fe_t::close);
      }
      break;
    }
    case fe_t::execute: {
      auto e = pr::fe::parse_execute(m.body);
      if (!e) return fail(e.error());
      sc.batch_open = true;
      raw();
      pl.sent(fe_t::execute);
      break;
    }
    case fe_t::sync:
      if (auto v = pr::fe::parse_empty(m.body, "Sync"); !v) return fail(v.error());
      raw();
      pl.sent(fe_t::sync);
      sc.batch_open = false;
      if (!deferred_shows_.empty()) flush_shows(sc, batch_tx_);
      batch_tx_ = routing::tx_effect::none;
      // A batch that started COPY FROM STDIN ends at the Sync after its data: ask then.
      if (!batch_copy_in_) capture_commit_position(sc);
      batch_copy_in_ = false;
      break;
    case fe_t::flush:
      if (auto v = pr::fe::parse_empty(m.body, "Flush"); !v) return fail(v.error());
      sc.batch_open = true;
      raw();
      break;
    case fe_t::function_call: {
      auto f = pr::fe::parse_function_call(m.body);
      if (!f) return fail(f.error());
      raw();
      pl.sent(fe_t::function_call);
      break;
    }
    case fe_t::copy_data:
      raw();
      break;
    case fe_t::copy_done:
    case fe_t::copy_fail: {
      auto v = pr::fe::validate(m.type, m.body);
      if (!v) return fail(v.error());
      raw();
      pl.sent(m.type);  // where the copy-in ends: Syncs before it are ignored by the server
      if (capture_after_copy_) {
        capture_after_copy_ = false;
        capture_commit_position(sc);
      }
      break;
    }
    default:
      violation_ = "invalid frontend message type " + std::to_string(static_cast<unsigned char>(m.type));
      return false;
  }
  if (sc.pipeline.local_at_head()) answer_local_requests(sc, client_out_);
  return true;
}

void session::note_unseen_state(server_connection& sc, const routing::classification& cls) {
  if (cls.may_leave_state && worker_.cfg().reset_after_functions) sc.unseen_state = true;
}

void session::note_settings(server_connection& sc, const routing::classification& cls) {
  for (const auto& name : cls.sets_parameters) {
    if (name == "*") {
      // RESET ALL / DISCARD ALL: back to what the client started with. (DISCARD ALL also
      // unpins the session: the session core sees to it.)
      wanted_ = startup_params_;
      meridian_settings_ = startup_meridian_settings_;
      sc.params = sc.baseline;
      sc.synced = nullptr;
      deferred_shows_.clear();
      continue;
    }
    if (is_valid_parameter_name(name) &&
        std::find(deferred_shows_.begin(), deferred_shows_.end(), name) == deferred_shows_.end())
      deferred_shows_.push_back(name);
  }
}

void session::flush_shows(server_connection& sc, routing::tx_effect tx) {
  if (deferred_shows_.empty()) return;
  const bool begins = tx == routing::tx_effect::begin || tx == routing::tx_effect::begin_read_only;
  if (begins || (tx == routing::tx_effect::none && sc.tx != pr::tx_status::idle)) return;  // not over yet
  for (const auto& name : deferred_shows_) {
    pr::fe::serialize(pr::fe::query{"SHOW " + name}, server_out_);
    sc.pipeline.sent(
        pr::pending_request{pr::request_kind::query, true, false, static_cast<std::uint32_t>(show_names_.size())});
    show_names_.push_back(name);
  }
  deferred_shows_.clear();
}

void session::note_statement(server_connection& sc, routing::target where) {
  worker_.meter().statement(sc.node.value, where == routing::target::any);
  if (where == routing::target::primary && !on_replica_) tx_wrote_ = true;
}

void session::capture_commit_position(server_connection& sc) {
  if (!tx_wrote_ || on_replica_) return;
  if (consistency() != routing::consistency::read_your_writes || mode() != pool_mode::transaction || core_.pinned()) {
    // Reads of this session do not depend on where its writes are (or stay on this connection).
    tx_wrote_ = false;
    return;
  }
  // Inside a transaction this reads a position before the commit, which is harmless: the
  // position that counts is the one read after the batch that ends the transaction.
  pr::fe::serialize(pr::fe::query{"SELECT pg_catalog.pg_current_wal_insert_lsn()"}, server_out_);
  sc.pipeline.sent(pr::pending_request{pr::request_kind::query, true, false, position_tag});
  captured_.reset();
}

void session::capture_position(const pr::frame& m) {
  if (m.type == be_t::data_row) {
    auto row = pr::be::parse_data_row(m.body);
    if (row && row->columns.size() == 1 && row->columns[0]) captured_ = routing::lsn::parse(*row->columns[0]);
  } else if (m.type == be_t::ready_for_query) {
    auto rfq = pr::be::parse_ready_for_query(m.body);
    // Only once the transaction is over does the position cover its commit. Without a
    // position (the query failed), tx_wrote_ stays set and reads go to the primary.
    if (rfq && rfq->status == pr::tx_status::idle && captured_) {
      commit_lsn_ = std::max(commit_lsn_, *captured_);
      tx_wrote_ = false;
    }
    captured_.reset();
  }
}

routing::consistency session::consistency() const {
  if (auto it = meridian_settings_.find("meridian.consistency"); it != meridian_settings_.end() && !it->second.empty())
    if (auto c = routing::parse_consistency(it->second)) return *c;
  if (auto it = meridian_settings_.find("meridian.routing"); it != meridian_settings_.end() && !it->second.empty())
    if (auto c = routing::parse_consistency(it->second)) return *c;
  return default_consistency_;
}

std::string session::meridian_statement(std::string_view sql, const routing::classification& cls) const {
  if (cls.shows_meridian) {
    if (auto name = routing::meridian_show(sql)) {
      if (auto bad = check_meridian_setting(*name, std::nullopt)) return raise_statement(*bad);
      // The value in force, whether it came from start-up, SET or the configuration.
      const auto level = consistency();
      std::string_view value = routing::to_string(level);
      if (*name == "meridian.routing") value = level == routing::consistency::primary ? "primary" : "split";
      return "SELECT '" + std::string(value) + "'::text AS \"" + *name + "\"";
    }
  }
  if (!cls.sets_meridian) return {};
  for (const auto& a : routing::meridian_settings(sql)) {
    if (auto bad = check_meridian_setting(a.name, a.value)) return raise_statement(*bad);
  }
  return {};
}

awaitable<bool> session::replica_caught_up(server_connection& sc) {
  const auto deadline = clock::now() + worker_.cfg().read_your_writes_wait;
  // Replay on a nearby replica usually trails a commit by well under a millisecond: ask again
  // soon, then less often.
  auto delay = std::chrono::microseconds(200);
  asio::steady_timer timer(client_.get_executor());
  const std::string sql = "SELECT pg_catalog.pg_last_wal_replay_lsn()";
  for (;;) {
    query_rows rows;
    auto r = co_await sc.run_internal_query(sql, worker_.cfg().max_message_bytes, &rows);
    if (!r) co_return false;
    if (rows.size() == 1 && rows[0].size() == 1) {
      auto replayed = routing::lsn::parse(rows[0][0]);
      if (!replayed) co_return false;  // not in recovery any more: no replica
      if (*replayed >= commit_lsn_) {
        confirmed_node_ = sc.node;
        confirmed_lsn_ = *replayed;
        co_return true;
      }
    }
    if (clock::now() + delay > deadline) co_return false;
    timer.expires_after(delay);
    error_code ec;
    co_await timer.async_wait(asio::redirect_error(use_awaitable, ec));
    delay = std::min<std::chrono::microseconds>(delay * 2, std::chrono::milliseconds(5));
  }
}

std::optional<std::string> session::deallocate_instead(server_connection& sc, std::string_view sql) {
  auto it = statements_.find(routing::deallocated_name(sql));
  if (it == statements_.end()) return std::nullopt;  // SQL-level (pinned), or unknown: the server answers
  // One of the client's protocol-level statements: on the server it has another name and may
  // serve other clients. The client's name goes; the server deallocates a throwaway statement
  // prepared just before, so the client gets PostgreSQL's own answer.
  statements_.erase(it);
  // Named after this session, so that one left behind by a failed batch never stands in another
  // session's way.
  const std::string throwaway = "meridian_deallocate_" + std::to_string(id_) + "_" + std::to_string(++deallocations_);
  pr::fe::serialize(pr::fe::parse{throwaway, "SELECT 1", {}}, server_out_);
  sc.pipeline.sent(pr::pending_request{pr::request_kind::parse, true, false});
  sc.parses_in_flight.push_back(throwaway);
  return "DEALLOCATE " + throwaway;
}

void session::ensure_prepared(server_connection& sc, const prepared_statement& st) {
  if (!sc.statements.touch(st.server_name)) prepare_on(sc, st, true);
}

void session::prepare_on(server_connection& sc, const prepared_statement& st, bool synthetic) {
  if (auto evicted = sc.statements.insert(st.server_name)) {
    pr::fe::serialize(pr::fe::close{pr::fe::target_kind::statement, *evicted}, server_out_);
    sc.pipeline.sent(pr::pending_request{pr::request_kind::close, true, false});
  }
  server_out_ += st.parse_message;
  sc.pipeline.sent(pr::pending_request{pr::request_kind::parse, synthetic, false});
  sc.parses_in_flight.push_back(st.server_name);
}

void session::answer_local_requests(server_connection& sc, std::string& out) {
  while (auto r = sc.pipeline.take_local()) {
    pr::be::serialize_empty(r->kind == pr::request_kind::parse ? be_t::parse_complete : be_t::close_complete, out);
  }
}

routing::route_request session::with_consistency(routing::route_request request) const {
  const auto level = consistency();
  request.split = request.split && level != routing::consistency::primary;
  if (level == routing::consistency::read_your_writes) {
    // A write whose position is not known yet: only the primary surely has it.
    if (tx_wrote_) request.split = false;
    request.min_replay = commit_lsn_;
  }
  return request;
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

session::attaching session::attach_now(const routing::route_request& asked) {
  if (worker_.paused()) return attaching::slow;
  const auto request = with_consistency(asked);
  auto decision = routing::choose_node(worker_.topology(), worker_.route_context(), request);
  if (!decision.node) return attaching::slow;
  if (decision.confirm && !replay_confirmed(*decision.node)) return attaching::slow;
  if (!routing_state().functions_loaded) return attaching::slow;
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
  // Work that may write waits this long at most for write authority, then is refused.
  std::optional<clock::time_point> authority_wait;
  bool primary_skipped = false;  // a read skips a primary it cannot reach once, for a replica
  for (;;) {
    auto decision = routing::choose_node(worker_.topology(), worker_.route_context(), request);
    if (decision.no_write_authority) {
      if (!authority_wait) authority_wait = clock::now() + worker_.cfg().coordination.write_wait;
      if (co_await await_write_authority(*authority_wait)) continue;
      co_return write_authority_refusal();
    }
    if (!decision.node)
      co_return server_error{std::string(pr::sqlstate::connection_failure), "no primary node is available"};
    if (decision.confirm && replay_confirmed(*decision.node)) decision.confirm = false;
    auto& p = pool_of(*decision.node);
    auto r = co_await p.acquire(clock::now() + worker_.cfg().wait_timeout);
    if (!r) {
      if (decision.replica && r.error().sqlstate == pr::sqlstate::connection_failure) {
        // Nothing was sent yet: the client need not notice. Skip the replica for a while.
        spdlog::warn("[c{}] replica {} unavailable, reading from elsewhere: {}", id_, p.node().name, r.error().message);
        worker_.skip_node(*decision.node);
        continue;
      }
      if (read && !primary_skipped && r.error().sqlstate == pr::sqlstate::connection_failure) {
        // A read the region's primary would have served, and it is down: the nearest replica
        // that may serve it instead (the router skips the primary for reads a while).
        spdlog::warn("[c{}] primary {} unavailable, reading from a replica: {}", id_, p.node().name, r.error().message);
        worker_.skip_node(*decision.node);
        primary_skipped = true;
        continue;
      }
      spdlog::warn("[c{}] no server connection to {}: {}", id_, p.node().name, r.error().message);
      co_return r.error();
    }
    auto sc = std::move(*r);
    auto& db = routing_state();
    if (!db.functions_loaded && !db.loading) {
      // First use of this database on this worker: learn which functions are read-only.
      db.loading = true;
      query_rows rows;
      auto loaded = co_await sc->run_internal_query(std::string(function_catalog_query),
                                                    worker_.cfg().max_message_bytes, &rows);
      db.loading = false;
      if (loaded) {
        worker_.set_functions(database_, rows);
      } else {
        spdlog::warn("[c{}] could not read function volatility: {}", id_, loaded.error().message);
      }
    }
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
      co_return err;
    }
    if (!decision.replica && routing::needs_write_authority(request) && !worker_.may_write()) {
      // Authority lapsed while this waited for the connection: the work must not start.
      give_back(sc);
      continue;
    }
    attach_to(std::move(sc), decision, read, spawn_reader);
    co_return std::nullopt;
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

server_error session::write_authority_refusal(bool rolled_back) const {
  const auto g = worker_.shared().authority.current();
  const auto now = clock::now();
  std::string since = "not yet confirmed in this topology epoch";
  if (g.until != clock::time_point{} && g.until <= now)
    since = "lapsed " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(now - g.until).count()) + " ms ago";
  spdlog::warn("[c{}] refused work that may write: no write authority over epoch {} ({})", id_, worker_.topology().epoch, since);
  return server_error{std::string(pr::sqlstate::cannot_connect_now),
                      "Meridian in region " + worker_.cfg().region +
                          " may not send writes to the primary: the etcd majority has not confirmed its topology "
                          "epoch (write authority " + since + "; this region may be cut off from the others). " +
                          (rolled_back ? "The transaction was rolled back: nothing it wrote was committed" : "Nothing was executed") +
                          "; reads go on"};
}

database_routing& session::routing_state() {
  if (!database_routing_) database_routing_ = &worker_.database(database_);
  return *database_routing_;
}

const routing::classification& session::classify_statement(std::string_view sql) {
  auto& cache = routing_state().cache;
  // A statement like one of the last few, but for its literals, is classified alike (see
  // recent_shapes).
  if (const auto* known = shapes_.find(sql, cache.generation())) {
    worker_.meter().cache_hits.add(1);
    return *known;
  }
  const auto misses = cache.misses();
  auto c = cache.get(sql);
  (cache.misses() == misses ? worker_.meter().cache_hits : worker_.meter().cache_misses).add(1);
  if (const auto* remembered = shapes_.remember(sql, cache.literals(), c, cache.generation())) return *remembered;
  if (!unremembered_) unremembered_ = std::make_unique<routing::classification>();
  *unremembered_ = std::move(c);
  return *unremembered_;
}

std::string session::params_to_sync(server_connection& sc) const {
  if (sc.synced == wanted_) return {};
  auto sql = parameter_sync_sql(*wanted_, sc.params, sc.baseline);
  if (sql.empty()) sc.synced = wanted_;
  return sql;
}

awaitable<std::optional<server_error>> session::sync_params(server_connection& sc) {
  const auto sql = params_to_sync(sc);
  if (sql.empty()) co_return std::nullopt;
  auto r = co_await sc.run_internal_query(sql, worker_.cfg().max_message_bytes);
  if (!r) co_return r.error();
  // Parameters the server does not report: record what we set or reset.
  for (const auto& [k, v] : *wanted_) sc.params[k] = v;
  std::erase_if(sc.params, [&](const auto& kv) { return !wanted_->count(kv.first) && !sc.baseline.count(kv.first); });
  sc.synced = wanted_;
  co_return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Query phase: server → client

bool session::releasable(const server_connection& sc) const {
  return mode() == pool_mode::transaction && !core_.holds_server() && sc.quiescent() && !server_writing_ &&
         server_out_.empty();
}

// The attached server's answers are relayed by plain completion handlers, one read at a time:
// this runs for every answer, and a coroutine resumed per read costs more than the relaying.
// The read is the connection's own pending one (server_connection::watch), which this session
// takes while attached: one started while the connection sat idle in its pool carries the
// answer to the first query, so relaying starts no read (and no system call) per transaction.
// What has to wait (a client that cannot take the output yet, a connection to reset, a server
// lost) continues in a coroutine of its own.
void session::read_server(server_conn_ptr sc) {
  if (ended_ || attached_ != sc) {
    // The session ended, or the connection was let go: give it back (or close it).
    if (!finish_server_now(sc, sc->quiescent()))
      asio::co_spawn(client_.get_executor(), reset_later(shared_from_this(), std::move(sc)), asio::detached);
    return;
  }
  if (sc->reader.get() != static_cast<server_reader*>(this)) sc->reader = shared_from_this();
  sc->watch();
}

void session::on_server_data(server_conn_ptr sc, error_code ec, std::size_t n) {
  if (ec) {
    if (ended_) return read_server(std::move(sc));  // woken by the session's end: let it go
    lose_server(std::move(sc), ec == asio::error::eof ? std::string("server closed the connection") : ec.message());
    return;
  }
  chunk_result chunk;
  try {
    sc->in.commit(n);
    chunk = process_server_chunk(*sc);
  } catch (const std::exception& e) {
    lose_server(std::move(sc), std::string("internal error relaying its answer: ") + e.what());
    return;
  }
  if (tracing())
    spdlog::trace("[c{}] server chunk of {} bytes, {} segment(s), tx {}, pipeline {}", id_, n, segments_.size(),
                  static_cast<char>(sc->tx), sc->pipeline.empty() ? "empty" : "busy");
  if (chunk.broken) return lose_server(std::move(sc), chunk.broken);
  bool written = true;
  if (!segments_.empty()) {
    auto data = sc->in.readable();
    buffers_.clear();
    for (const auto& s : segments_)
      buffers_.emplace_back((s.generated ? generated_.data() : data.data()) + s.offset, s.length);
    const auto w = write_client_now(buffers_);
    if (w == quick_write::wait) {
      asio::co_spawn(client_.get_executor(), write_then_relay(shared_from_this(), std::move(sc), chunk), asio::detached);
      return;
    }
    written = w == quick_write::done;
  }
  relayed(std::move(sc), chunk, written);
}

awaitable<void> session::write_then_relay(std::shared_ptr<session> self, server_conn_ptr sc, chunk_result chunk) {
  const bool written = co_await self->write_client(self->buffers_);
  self->relayed(std::move(sc), chunk, written);
}

void session::relayed(server_conn_ptr sc, const chunk_result& chunk, bool written) {
  sc->in.consume(chunk.consumed);
  if (!written) {
    ended_ = true;  // the client is gone
    return read_server(std::move(sc));
  }
  sc->in.reserve(chunk.need);
  if (attached_ == sc) arm_idle_in_transaction(*sc);
  if (sc->in.capacity() > (1u << 20) && sc->in.readable().size() < 16384) sc->in.shrink(16384);
  if (attached_ == sc && releasable(*sc)) {
    release_attached();
  } else {
    read_server(std::move(sc));
  }
  if (waiting_server_) {
    // The client's next message waited for these answers.
    waiting_server_ = false;
    if (tls_)
      spawn_serve(false);
    else
      continue_turn();
  }
}

routing::session_core::server_state session::server_state() const {
  if (!attached_) return {};
  return {!attached_->pipeline.empty() || attached_->passthrough > 0, attached_->pipeline.copying_in()};
}

void session::detach() {
  attached_.reset();
  core_.released();
}

void session::release_attached() {
  auto sc = attached_;
  detach();
  show_names_.clear();
  if (sc->unseen_state) {
    // Reset on the side: this client goes on meanwhile, on another connection if it needs one.
    // Nothing the connection hears until then comes to this session.
    sc->reader.reset();
    sc->stop_watching();
    asio::co_spawn(client_.get_executor(), reset_later(shared_from_this(), std::move(sc)), asio::detached);
  } else {
    sc->owner->release(sc);
  }
  if (shutdown_requested_) {
    // The client is between transactions: wake its reader so it can leave.
    error_code ignored;
    client_.cancel(ignored);
  }
}

void session::lose_server(server_conn_ptr sc, std::string why) {
  asio::co_spawn(client_.get_executor(), lose_server_task(shared_from_this(), std::move(sc), std::move(why)), asio::detached);
}

awaitable<void> session::lose_server_task(std::shared_ptr<session> self, server_conn_ptr sc, std::string why) {
  co_await self->on_server_lost(sc, why);
}

awaitable<void> session::reset_later(std::shared_ptr<session> self, server_conn_ptr sc) {
  co_await self->reset_and_release(std::move(sc));
}

session::chunk_result session::process_server_chunk(server_connection& sc) {
  chunk_result result;
  segments_.clear();
  generated_.clear();
  const auto data = sc.in.readable();
  std::size_t pos = 0;
  std::size_t run_start = 0;
  auto close_run = [&] {
    if (pos > run_start) segments_.push_back({false, run_start, pos - run_start});
    run_start = pos;
  };
  auto emit_generated = [&](std::size_t from) {
    if (generated_.size() > from) {
      close_run();
      segments_.push_back({true, from, generated_.size() - from});
    }
  };
  const auto max_message = worker_.cfg().max_message_bytes;
  // Server messages may be larger than what we accept from clients (big rows): only those we
  // must inspect are held whole; rows and COPY data stream through.
  const std::size_t max_server_message = std::size_t{1} << 30;

  while (pos < data.size()) {
    if (sc.passthrough > 0) {
      auto take = std::min(sc.passthrough, data.size() - pos);
      pos += take;
      sc.passthrough -= take;
      continue;
    }
    auto r = pr::next_frame(data.substr(pos), max_server_message);
    if (r.status == pr::frame_status::invalid) {
      result.broken = "invalid message from server";
      return result;
    }
    if (r.status == pr::frame_status::need_more) {
      const char type = data.size() - pos >= pr::typed_header_size ? data[pos] : '\0';
      if ((type == be_t::data_row || type == be_t::copy_data) && r.needed > 0) {
        auto v = sc.pipeline.received(type);
        if (v.unexpected) {
          result.broken = "unexpected message from server";
          return result;
        }
        if (v.forward) {
          sc.passthrough = r.needed - (data.size() - pos);
          pos = data.size();
          continue;
        }
      }
      if (r.needed > max_message && type != be_t::data_row && type != be_t::copy_data) {
        result.broken = "server message exceeds the maximum message size";
        return result;
      }
      result.need = r.needed;
      break;
    }
    const auto& m = r.msg;
    const auto generated_before = generated_.size();
    const auto answering = sc.pipeline.front();
    auto v = sc.pipeline.received(m.type);
    if (v.unexpected) {
      result.broken = "unexpected message from server";
      return result;
    }
    if (answering && answering->synthetic && answering->kind == pr::request_kind::query) {
      if (answering->tag == position_tag) {
        capture_position(m);
      } else if (answering->tag < show_names_.size()) {
        capture_show(sc, m, answering->tag);
      }
    }
    bool forward = v.forward;
    switch (m.type) {
      case be_t::ready_for_query: {
        auto rfq = pr::be::parse_ready_for_query(m.body);
        if (!rfq) {
          result.broken = "invalid ReadyForQuery from server";
          return result;
        }
        sc.tx = rfq->status;
        // The session core learns the transaction's status, and when its own Sync is answered.
        if (v.forward) {
          core_.server_ready(rfq->status);
        } else if (answering && answering->kind == pr::request_kind::sync && answering->tag == core_sync_tag) {
          core_.server_ready(rfq->status, true);
        }
        if (forward) batch_done(sc);
        // The client's ReadyForQuery waits for the queries Meridian sent after its batch (the
        // SHOW of a parameter it set, the position of its commit): its next statement, which
        // may follow at once, is then routed knowing their answers.
        auto next = sc.pipeline.front();
        const bool followed = next && next->synthetic && next->kind == pr::request_kind::query;
        if (forward && followed) {
          held_ready_.assign(m.body.data() - pr::typed_header_size, m.wire_size);
          forward = false;
        } else if (!forward && !followed && !held_ready_.empty()) {
          generated_ += held_ready_;
          held_ready_.clear();
        }
        break;
      }
      case be_t::parameter_status: {
        auto ps = pr::be::parse_parameter_status(m.body);
        if (!ps) {
          result.broken = "invalid ParameterStatus from server";
          return result;
        }
        auto name = lower(ps->name);
        sc.params[name] = std::string(ps->value);
        // The connection moved: in step with the client again only if the client follows.
        sc.synced = nullptr;
        if (is_tracked_parameter(name)) {
          if (forward) {
            wanted_ = worker_.parameter_sets().with(wanted_, name, std::string(ps->value));
            sc.synced = wanted_;
          }
        } else {
          if (is_tainting_parameter(name)) sc.tainted = true;
          forward = false;  // server-level values (in_hot_standby, server_version) stay as presented
        }
        break;
      }
      case be_t::parse_complete:
        if (!sc.parses_in_flight.empty()) sc.parses_in_flight.pop_front();
        break;
      case be_t::command_complete: {
        // These drop every prepared statement on the server, and the client's too.
        auto tag = m.body.substr(0, m.body.empty() ? 0 : m.body.size() - 1);
        if (tag == "DEALLOCATE ALL" || tag == "DISCARD ALL") {
          sc.statements.clear();
          statements_.clear();
        }
        break;
      }
      case be_t::error_response: {
        if (v.forward && !v.unsolicited) core_.server_error();
        auto fields = pr::be::parse_error_fields(m.body);
        const auto severity = fields ? fields->get('V') : std::string_view{};
        if (severity == "FATAL" || severity == "PANIC") {
          // The backend ends this client's session (terminated, shutting down): the client gets
          // the server's own words, whatever was asked, and nothing of Meridian's after them.
          sc.tainted = true;
          forward = true;
          server_ended_session_ = true;
          spdlog::info("[c{}] server {} ended the session: {}", id_, sc.node.value, fields->get('M'));
        } else if (v.unsolicited) {
          // Nothing was asked and it is not the end: not the client's business.
          sc.tainted = true;
          forward = false;
          spdlog::warn("[c{}] server {} sent an unsolicited error: {}", id_, sc.node.value,
                       fields ? std::string(fields->get('M')) : std::string("(malformed)"));
        }
        break;
      }
      default:
        break;
    }
    if (forward && m.type == be_t::error_response) {
      auto fields = pr::be::parse_error_fields(m.body);
      if (fields) worker_.meter().errors.count(error_meter::origin::server, fields->get('C'));
    }
    if (!sc.pipeline.discarded().empty()) reconcile_discarded(sc);
    if (forward) {
      pos += m.wire_size;
    } else {
      close_run();
      pos += m.wire_size;
      run_start = pos;
    }
    if (sc.pipeline.local_at_head()) answer_local_requests(sc, generated_);
    emit_generated(generated_before);
  }
  close_run();
  result.consumed = pos;
  return result;
}

void session::capture_show(server_connection& sc, const pr::frame& m, std::uint32_t tag) {
  if (m.type == be_t::data_row) {
    auto row = pr::be::parse_data_row(m.body);
    if (row && !row->columns.empty() && row->columns[0]) show_value_ = std::string(*row->columns[0]);
  } else if (m.type == be_t::error_response) {
    show_failed_ = true;
  } else if (m.type == be_t::ready_for_query) {
    if (!show_failed_ && show_names_[tag].rfind("meridian.", 0) == 0) {
      // Meridian's own: kept apart, never replayed to servers.
      meridian_settings_[show_names_[tag]] = show_value_;
    } else if (!show_failed_) {
      const auto& name = show_names_[tag];
      wanted_ = worker_.parameter_sets().with(wanted_, name, show_value_);
      sc.params[name] = show_value_;
      sc.synced = wanted_;
    }
    show_value_.clear();
    show_failed_ = false;
  }
}

void session::reconcile_discarded(server_connection& sc) {
  for (const auto& d : sc.pipeline.discarded()) {
    if (d.kind == pr::request_kind::parse && !d.local && !sc.parses_in_flight.empty()) {
      sc.statements.erase(sc.parses_in_flight.front());
      sc.parses_in_flight.pop_front();
    }
  }
  sc.pipeline.discarded().clear();
}

bool session::finish_server_now(const server_conn_ptr& sc, bool healthy) {
  if (attached_ == sc) detach();
  auto* p = sc->owner;
  if (!healthy || sc->tainted) {
    p->discard(sc);
    return true;
  }
  if (mode() == pool_mode::session || core_.pinned() || sc->unseen_state) return false;  // reset first: reset_and_release
  p->release(sc);
  return true;
}

awaitable<void> session::reset_and_release(server_conn_ptr sc) {
  // A connection that held a session's state goes to the next client only after a reset.
  auto* p = sc->owner;
  auto r = co_await sc->run_internal_query(worker_.cfg().reset_query, worker_.cfg().max_message_bytes);
  if (!r || sc->tx != pr::tx_status::idle) {
    p->discard(sc);
    co_return;
  }
  sc->statements.clear();
  sc->params = sc->baseline;
  sc->synced = nullptr;
  sc->unseen_state = false;
  p->release(sc);
}

awaitable<void> session::on_server_lost(server_conn_ptr sc, const std::string& why) {
  const bool busy = !sc->quiescent();
  if (attached_ == sc) detach();
  sc->owner->discard(sc);
  const auto& node_name = worker_.topology().at(sc->node).name;
  if (server_ended_session_) {
    // The server said why in a FATAL the client has; PostgreSQL closes the connection after it.
    close_client();
    co_return;
  }
  if (!busy && mode() == pool_mode::transaction) {
    spdlog::info("[c{}] idle server connection to {} lost: {}", id_, node_name, why);
    co_return;
  }
  // The client's query or transaction died with the server connection; PostgreSQL would have
  // closed the client's connection too.
  spdlog::warn("[c{}] server connection to {} lost mid-transaction: {}", id_, node_name, why);
  const std::string message = "server connection to \"" + node_name + "\" was lost: " + why;
  co_await fatal(pr::sqlstate::connection_failure, message);
}

// ---------------------------------------------------------------------------------------------
// Output to the client, shared by both directions

awaitable<bool> session::write_client(const std::vector<asio::const_buffer>& buffers) {
  if (client_closed_) co_return false;
  if (writing_) {
    // Another write is in progress: queue behind it, preserving order, with a bound.
    for (const auto& b : buffers) backlog_.append(static_cast<const char*>(b.data()), b.size());
    while (!client_closed_ && writing_ && backlog_.size() > backlog_limit) {
      error_code ignored;
      if (!drained_) drained_ = std::make_unique<asio::steady_timer>(client_.get_executor(), clock::time_point::max());
      co_await drained_->async_wait(asio::redirect_error(use_awaitable, ignored));
    }
    co_return !client_closed_;
  }
  writing_ = true;
  error_code ec;
  if (tls_) {
    co_await asio::async_write(*tls_, buffers, asio::redirect_error(use_awaitable, ec));
  } else {
    co_await asio::async_write(client_, buffers, asio::redirect_error(use_awaitable, ec));
  }
  while (!ec && !backlog_.empty()) {
    std::swap(backlog_, inflight_);
    if (tls_) {
      co_await asio::async_write(*tls_, asio::buffer(inflight_), asio::redirect_error(use_awaitable, ec));
    } else {
      co_await asio::async_write(client_, asio::buffer(inflight_), asio::redirect_error(use_awaitable, ec));
    }
    inflight_.clear();
  }
  writing_ = false;
  if (drained_) drained_->cancel();
  if (ec) {
    close_client();
    co_return false;
  }
  co_return true;
}

session::quick_write session::write_client_now(std::vector<asio::const_buffer>& buffers) {
  if (client_closed_) return quick_write::closed;
  if (writing_ || tls_) return quick_write::wait;  // behind a write in progress; TLS goes through its stream
  error_code ec;
  switch (send_now(client_.native_handle(), buffers, ec)) {
    case send_status::done:
      return quick_write::done;
    case send_status::partial:
      return quick_write::wait;
    case send_status::failed:
      break;
  }
  spdlog::debug("[c{}] write to client failed: {}", id_, ec.message());
  close_client();
  return quick_write::closed;
}

awaitable<bool> session::write_client(const std::string& bytes) {
  std::vector<asio::const_buffer> one{asio::buffer(bytes)};
  const auto w = write_client_now(one);
  if (w != quick_write::wait) co_return w == quick_write::done;
  co_return co_await write_client(one);
}

awaitable<void> session::fatal(std::string_view sqlstate, std::string_view message) {
  if (client_closed_) co_return;
  auto msg = error_message(pr::severity::fatal, sqlstate, message);
  worker_.meter().errors.count(error_meter::origin::meridian, sqlstate);
  co_await write_client(msg);
  close_client();
}

// ---------------------------------------------------------------------------------------------
// Cancel and shutdown

void session::cancel_running_query() {
  if (!attached_) return;  // nothing is running
  const auto& sc = *attached_;
  asio::co_spawn(client_.get_executor(), forward_cancel(shared_from_this(), worker_.topology().at(sc.node), sc.key),
                 asio::detached);
}

awaitable<void> session::forward_cancel(std::shared_ptr<session> self, routing::node node,
                                        pr::be::backend_key_data key) {
  auto ex = self->client_.get_executor();
  tcp::socket s(ex);
  tcp::resolver resolver(ex);
  error_code ec;
  auto endpoints = co_await resolver.async_resolve(node.host, std::to_string(node.port), asio::redirect_error(use_awaitable, ec));
  if (ec) co_return;
  co_await asio::async_connect(s, endpoints, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    spdlog::warn("[c{}] could not forward cancel to {}: {}", self->id_, node.name, ec.message());
    co_return;
  }
  std::string packet;
  pr::serialize(pr::cancel_request{key.process_id, key.secret_key}, packet);
  co_await asio::async_write(s, asio::buffer(packet), asio::redirect_error(use_awaitable, ec));
  // The server closes the connection when it has processed the request.
  char byte;
  co_await s.async_read_some(asio::buffer(&byte, 1), asio::redirect_error(use_awaitable, ec));
  self->worker_.shared().cancels_forwarded.fetch_add(1);
  spdlog::info("[c{}] cancel forwarded to {}", self->id_, node.name);
}

void session::request_shutdown() {
  const auto connected_for = clock::now() - connected_at_;
  if (!attached_ && connected_for < shutdown_grace) {
    // Just connected (a rolling restart under pgbench -C): its login and first statement are
    // most likely on their way. It runs as usual until the grace is over, then is asked again.
    auto again = std::make_shared<asio::steady_timer>(client_.get_executor(), shutdown_grace - connected_for);
    again->async_wait([weak = weak_from_this(), again](error_code ec) {
      if (auto s = weak.lock(); s && !ec && !s->ended_) s->request_shutdown();
    });
    return;
  }
  shutdown_requested_ = true;
  if (!attached_) {
    // Between transactions: wake the reader so it can say goodbye now.
    error_code ignored;
    client_.cancel(ignored);
  }
}

}  // namespace meridian::proxy
