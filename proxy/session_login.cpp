// The client session: start-up packet, TLS, authentication and admission (see session_parts.hpp for
// how the session is split).
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
#include "proxy/params.hpp"
#include "proxy/pool.hpp"
#include "proxy/send_now.hpp"
#include "proxy/worker.hpp"
#include "routing/router.hpp"

namespace meridian::proxy {

using namespace session_parts;  // and its pr, fe_t, be_t, clock

namespace {

constexpr std::size_t max_startup_packet = 10'000;  // as PostgreSQL's MAX_STARTUP_PACKET_LENGTH
constexpr std::size_t max_auth_message = 8192;

}  // namespace

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

  if (!co_await spell_startup_params(*params_pool->server_params())) co_return false;

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

awaitable<bool> session::spell_startup_params(const param_map& server) {
  // PostgreSQL reports a parameter as it spells it (`utf8` → `UTF8`, `europe/paris` →
  // `Europe/Paris`, `iso, dmy` → `ISO, DMY`), and drivers choose codecs and date parsing by
  // these reports. So the client's start-up values are taken as the server spells them: known
  // spellings from this worker's earlier logins, the rest asked of a server with set_config
  // (local to its statement, so the connection is left as it was). A value the server refuses
  // ends the login as PostgreSQL ends it, with the server's own error.
  auto spelled = *startup_params_;
  std::vector<std::string> unknown;
  bool changed = false;
  for (const auto& [k, v] : *startup_params_) {
    if (!is_tracked_parameter(k) || k == "application_name") continue;
    if (auto it = server.find(k); it != server.end() && it->second == v) continue;
    if (auto known = worker_.server_spelling(k, v)) {
      if (*known != v) {
        spelled[k] = *known;
        changed = true;
      }
      continue;
    }
    unknown.push_back(k);
  }
  if (!unknown.empty()) {
    std::string sql = "SELECT ";
    for (std::size_t i = 0; i < unknown.size(); ++i) {
      if (i) sql += ", ";
      sql += "pg_catalog.set_config(" + quote_literal(unknown[i]) + ", " + quote_literal(spelled[unknown[i]]) + ", true)";
    }
    query_rows rows;
    auto asked = co_await run_on_read_node(sql, &rows);
    if (!asked) {
      if (asked.error().sqlstate.rfind("08", 0) != 0 && asked.error().sqlstate != pr::sqlstate::too_many_connections) {
        co_await fatal(asked.error().sqlstate, asked.error().message);
        co_return false;
      }
      // No server to ask now: the values go as the client spelled them (they are set on every
      // server connection the client uses, and reported as the server spells them then).
      spdlog::warn("[c{}] could not ask how the server spells the start-up parameters: {}", id_, asked.error().message);
    } else if (rows.size() == 1 && rows[0].size() == unknown.size()) {
      for (std::size_t i = 0; i < unknown.size(); ++i) {
        const auto& k = unknown[i];
        worker_.learn_spelling(k, spelled[k], rows[0][i]);
        if (rows[0][i] != spelled[k]) {
          spelled[k] = rows[0][i];
          changed = true;
        }
      }
    }
  }
  if (changed) wanted_ = startup_params_ = worker_.parameter_sets().intern(std::move(spelled));
  co_return true;
}

awaitable<tl::expected<void, server_error>> session::run_on_read_node(const std::string& sql, query_rows* rows) {
  routing::route_request read;
  read.where = routing::target::any;
  const auto decision = routing::choose_node(worker_.topology(), worker_.route_context(), read);
  if (!decision.node)
    co_return tl::unexpected(server_error{std::string(pr::sqlstate::connection_failure), "no node to ask"});
  auto& p = pool_of(*decision.node);
  auto r = co_await p.acquire(clock::now() + worker_.cfg().wait_timeout);
  if (!r) co_return tl::unexpected(r.error());
  auto sc = std::move(*r);
  // A server that stops answering (a cut network drops packets) must not hold the session, or
  // the worker's catalog, for long: past pool.connect_timeout the connection is closed.
  asio::steady_timer limit(client_.get_executor(), clock::now() + worker_.cfg().connect_timeout);
  limit.async_wait([weak = std::weak_ptr<server_connection>(sc)](error_code ec) {
    if (ec) return;
    if (auto c = weak.lock()) {
      error_code ignored;
      c->socket.close(ignored);
    }
  });
  auto done = co_await sc->run_internal_query(sql, worker_.cfg().max_message_bytes, rows);
  limit.cancel();
  give_back(sc);
  co_return done;
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

}  // namespace meridian::proxy
