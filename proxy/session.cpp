// The client session: its life, the client's turn (the session core's steps carried out), cancel
// and shutdown (see session_parts.hpp for how the session is split).
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
  std::string state = !logged_in_ ? "login"
                      : attached_ ? (attached_->tx == pr::tx_status::idle ? "active" : "in transaction")
                      : core_.lost_transaction() != pr::tx_status::idle ? "in transaction (server lost)"
                                                                        : "idle";
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

awaitable<void> session::close_client_gracefully() {
  if (tls_ && !client_closed_) {
    static constexpr auto tls_close_wait = std::chrono::milliseconds(500);
    asio::steady_timer bound(client_.get_executor());
    bound.expires_after(tls_close_wait);
    bound.async_wait([self = shared_from_this()](error_code ec) {
      if (ec) return;
      error_code ignored;
      self->client_.cancel(ignored);  // the client neither read nor answered: what waits ends
    });
    // What is being written (the FATAL itself, perhaps) goes first.
    while (!client_closed_ && writing_) {
      if (!drained_) drained_ = std::make_unique<asio::steady_timer>(client_.get_executor(), clock::time_point::max());
      error_code ignored;
      co_await drained_->async_wait(asio::redirect_error(use_awaitable, ignored));
    }
    if (!client_closed_) {
      error_code ec;  // the client's close (or its close_notify) ends it either way
      co_await tls_->async_shutdown(asio::redirect_error(use_awaitable, ec));
    }
    bound.cancel();
  }
  close_client();
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
  // Left in a transaction that made objects: the server rolls it back.
  if (tx_made_objects_) worker_.shared().statement_generation.fetch_add(1, std::memory_order_relaxed);
  tx_made_objects_ = false;
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
    // Routing knows the database's catalog before it routes a unit (one to route: not a
    // client's Terminate, which needs no server).
    if (!attached_ && !in_.readable().empty() && in_.readable()[0] != fe_t::terminate &&
        routing_state().catalog_due())
      return {client_step::kind::read_catalog, {}};
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
        // What was left of a batch the replica failed (or of one lost with its server) is
        // skipped: its Sync is answered here.
        append_ready(client_out_, st.ready);
        in_.consume(st.length);
        continue;
      case step_kind::answer_lost: {
        // The client's transaction block was lost with its server (see answer_lost_work).
        const auto data = in_.readable();
        const char type = data[0];
        if (st.lost == routing::lost_answer::rollback_done && type != fe_t::query) {
          // An extended ROLLBACK (or COMMIT) of the lost block: each message's own answer.
          answer_rollback_message(type, st.length > pr::typed_header_size ? data[pr::typed_header_size] : '\0');
        } else {
          append_lost_answer(client_out_, st.lost);
          if (type == fe_t::query || type == fe_t::function_call) append_ready(client_out_, st.ready);
        }
        in_.consume(st.length);
        continue;
      }
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
        sc.pipeline.sent(pr::pending_request{pr::request_kind::sync, true, false, 0, core_sync_tag});
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
        attached_->pipeline.note_effect(st.effect);
        const auto data = in_.readable();
        const pr::frame m{data[0], data.substr(pr::typed_header_size, st.length - pr::typed_header_size), st.length};
        keep_for_retry(m, st.effect);
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

void session::answer_rollback_message(char type, char first_byte) {
  switch (type) {
    case fe_t::parse: pr::be::serialize_empty(be_t::parse_complete, client_out_); break;
    case fe_t::bind: pr::be::serialize_empty(be_t::bind_complete, client_out_); break;
    case fe_t::close: pr::be::serialize_empty(be_t::close_complete, client_out_); break;
    case fe_t::execute: pr::be::serialize(pr::be::command_complete{"ROLLBACK"}, client_out_); break;
    case fe_t::describe:
      // A transaction statement takes no parameters and returns no rows.
      if (first_byte == 'S') pr::be::serialize(pr::be::parameter_description{}, client_out_);
      pr::be::serialize_empty(be_t::no_data, client_out_);
      break;
    default:
      break;  // Flush: nothing to say
  }
}

void session::keep_for_retry(const pr::frame& m, std::uint8_t effect) {
  const auto& sc = *attached_;
  if (!sc.batch_open) {
    // The message begins a unit: it may run again if it reads, alone, outside a block.
    retry_.ok = sc.tx == pr::tx_status::idle && (sc.pipeline.empty() || (!sc.pipeline.client_unit_pending() &&
                                                                        !sc.pipeline.copying_in()));
    retry_.bytes.clear();
    retry_.named.clear();
  }
  if (!retry_.ok) return;
  if (effect != 0 || retry_.bytes.size() + m.wire_size > retry_state::max_bytes) {
    retry_.ok = false;
    return;
  }
  retry_.bytes.append(m.body.data() - pr::typed_header_size, m.wire_size);
  if (m.type == fe_t::parse && !m.body.empty() && m.body[0] != '\0') {
    const auto name = m.body.substr(0, m.body.find('\0'));
    if (statements_.find(name) == statements_.end()) retry_.named.emplace_back(name);
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
      if (step.what == client_step::kind::read_catalog) {
        co_await read_catalog();
        continue;
      }
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
