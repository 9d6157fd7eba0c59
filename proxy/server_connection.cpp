#include "proxy/server_connection.hpp"

#include <sys/socket.h>

#include "protocol/error.hpp"
#include "protocol/framing.hpp"
#include "protocol/frontend.hpp"
#include "protocol/md5.hpp"
#include "protocol/scram.hpp"
#include "protocol/startup.hpp"
#include "proxy/params.hpp"
#include "proxy/pool.hpp"

namespace meridian::proxy {

namespace pr = meridian::protocol;
using namespace std::chrono_literals;

namespace {

server_error connection_failed(const routing::node& node, const std::string& what) {
  return server_error{std::string(pr::sqlstate::connection_failure),
                      "could not connect to server \"" + node.name + "\": " + what};
}

server_error from_error_response(std::string_view body) {
  auto fields = pr::be::parse_error_fields(body);
  if (!fields) return server_error{std::string(pr::sqlstate::protocol_violation), "malformed ErrorResponse from server"};
  auto code = fields->get('C');
  return server_error{code.empty() ? std::string(pr::sqlstate::connection_failure) : std::string(code),
                      std::string(fields->get('M'))};
}

}  // namespace

server_connection::server_connection(asio::any_io_executor ex, routing::node_id n, std::size_t max_prepared)
    : socket(ex), statements(max_prepared), node(n) {
  created = last_used = std::chrono::steady_clock::now();
}

void server_connection::close() {
  stop_watching();
  reader.reset();
  error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

void server_connection::watch() {
  if (watching_ || !socket.is_open()) return;
  watching_ = true;
  if (tls) {
    make_room();
    tls->async_read_some(asio::buffer(in.write_ptr(), in.writable()),
                         with_memory(watch_memory_, [self = shared_from_this(), generation = watch_generation_](
                                                        error_code ec, std::size_t n) { self->on_watched(generation, ec, n); }));
    return;
  }
  // A read stopped a moment ago may not have completed yet (its operation is the same object):
  // its completion starts this one.
  if (!quiet_watch_.pending()) start_quiet_watch();
}

void server_connection::make_room() {
  if (in.writable() == 0) in.reserve(in.readable().size() + 1);
}

void server_connection::start_quiet_watch() {
  make_room();
  quiet_generation_ = watch_generation_;
  quiet_watch_.read(socket, in.write_ptr(), in.writable(), shared_from_this(), [](void* me, error_code ec, std::size_t n) {
    auto* self = static_cast<server_connection*>(me);
    if (self->quiet_generation_ != self->watch_generation_ && self->watching_ && self->socket.is_open()) {
      // Stopped, then asked for again before the stopped read came back: read now.
      return self->start_quiet_watch();
    }
    self->on_watched(self->quiet_generation_, ec, n);
  });
}

void server_connection::stop_watching() {
  ++watch_generation_;
  if (!watching_) return;
  watching_ = false;
  error_code ignored;
  socket.cancel(ignored);  // its completion finds the generation moved on
}

void server_connection::on_watched(std::uint32_t generation, error_code ec, std::size_t n) {
  if (generation != watch_generation_) return;
  watching_ = false;
  auto self = shared_from_this();
  if (auto r = reader) return r->on_server_data(std::move(self), ec, n);  // held while it runs
  if (owner) owner->heard_while_idle(self, ec, n);
}

bool server_connection::looks_alive() {
  if (!socket.is_open()) return false;
  if (tls && SSL_pending(tls->native_handle()) > 0) return false;  // decrypted and unread: not idle
  char byte;
  auto n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return false;                                          // EOF
  if (n > 0) return false;                                           // unsolicited data: FATAL notice
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;  // nothing to read: healthy
}

awaitable<tl::expected<pr::frame, server_error>> server_connection::read_message(std::size_t max_message) {
  in.consume(consumed_);
  consumed_ = 0;
  for (;;) {
    auto r = pr::next_frame(in.readable(), max_message);
    if (r.status == pr::frame_status::complete) {
      consumed_ = r.msg.wire_size;
      co_return r.msg;
    }
    if (r.status == pr::frame_status::invalid)
      co_return tl::unexpected(server_error{std::string(pr::sqlstate::protocol_violation),
                                            std::string("invalid message from server: ") + r.reason});
    in.reserve(r.needed);
    error_code ec;
    auto buffer = asio::buffer(in.write_ptr(), in.writable());
    auto n = co_await read_some(buffer, ec);
    if (ec) co_return tl::unexpected(server_error{std::string(pr::sqlstate::connection_failure),
                                                  "server closed the connection: " + ec.message()});
    in.commit(n);
  }
}

awaitable<tl::expected<void, std::string>> server_connection::start_tls(const routing::node& n, const upstream_tls& settings) {
  std::string request;
  pr::serialize_ssl_request(request);
  error_code ec;
  co_await asio::async_write(socket, asio::buffer(request), asio::redirect_error(use_awaitable, ec));
  if (ec) co_return tl::unexpected(ec.message());
  // Exactly one byte: anything after it must come through TLS (CVE-2021-23214).
  char answer = 0;
  co_await asio::async_read(socket, asio::buffer(&answer, 1), asio::redirect_error(use_awaitable, ec));
  if (ec) co_return tl::unexpected(ec.message());
  if (answer == 'N') {
    if (settings.mode == "prefer") co_return tl::expected<void, std::string>{};
    co_return tl::unexpected("the server does not support SSL, but sslmode is " + settings.mode);
  }
  if (answer != 'S') co_return tl::unexpected(std::string("unexpected answer to SSLRequest"));
  tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(socket, settings.context);
  SSL* ssl = tls->native_handle();
  error_code address_ec;
  asio::ip::make_address(n.host, address_ec);
  if (address_ec) SSL_set_tlsext_host_name(ssl, n.host.c_str());  // SNI for names, not addresses
  if (settings.mode == "verify-full") {
    // The certificate must name the host we connect to (a DNS name or an IP address).
    if (address_ec ? SSL_set1_host(ssl, n.host.c_str()) != 1
                   : X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), n.host.c_str()) != 1)
      co_return tl::unexpected(std::string("cannot set the host name to verify"));
  }
  co_await tls->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(use_awaitable, ec));
  if (ec) {
    std::string why = ec.message();
    if (long v = SSL_get_verify_result(ssl); v != X509_V_OK) why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(v);
    co_return tl::unexpected("TLS handshake: " + why);
  }
  co_return tl::expected<void, std::string>{};
}

awaitable<tl::expected<void, server_error>> server_connection::establish(const routing::node& n,
                                                                         const server_login& login,
                                                                         std::chrono::milliseconds timeout,
                                                                         std::size_t max_message,
                                                                         std::shared_ptr<const upstream_tls> upstream) {
  // One deadline for the whole exchange: when it fires the socket is closed, which fails
  // whatever operation is pending.
  auto ex = socket.get_executor();
  auto deadline = std::make_shared<asio::steady_timer>(ex, timeout);
  auto timed_out = std::make_shared<bool>(false);
  deadline->async_wait([this, deadline, timed_out](error_code ec) {
    if (!ec) {
      *timed_out = true;
      error_code ignored;
      socket.close(ignored);
    }
  });
  struct cancel_on_exit {
    std::shared_ptr<asio::steady_timer> t;
    ~cancel_on_exit() { t->cancel(); }
  } guard{deadline};

  auto fail = [&](const std::string& what) -> tl::expected<void, server_error> {
    return tl::unexpected(connection_failed(n, *timed_out ? "timeout expired" : what));
  };

  error_code ec;
  tcp::resolver resolver(ex);
  auto endpoints = co_await resolver.async_resolve(n.host, std::to_string(n.port), asio::redirect_error(use_awaitable, ec));
  if (ec) co_return fail("cannot resolve " + n.host + ": " + ec.message());
  co_await asio::async_connect(socket, endpoints, asio::redirect_error(use_awaitable, ec));
  if (ec) co_return fail(ec.message());
  socket.set_option(tcp::no_delay(true), ec);
  if (upstream) {
    tls_settings = std::move(upstream);
    auto secured = co_await start_tls(n, *tls_settings);
    if (!secured) co_return fail(secured.error());
  }

  std::string out;
  pr::startup_message sm;
  sm.parameters = {{"user", login.user}, {"database", login.database}};
  pr::serialize(sm, out);
  co_await write(asio::buffer(out), ec);
  if (ec) co_return fail(ec.message());

  std::optional<pr::scram_client> scram;
  for (;;) {
    auto msg = co_await read_message(max_message);
    if (!msg) co_return *timed_out ? fail("") : tl::expected<void, server_error>(tl::unexpected(msg.error()));
    out.clear();
    switch (msg->type) {
      case pr::backend_type::authentication: {
        auto auth = pr::be::parse_authentication(msg->body);
        if (!auth) co_return tl::unexpected(server_error{std::string(pr::sqlstate::protocol_violation), auth.error().message});
        const std::string no_password = "server asked for a password but none is configured for user \"" + login.user + "\"";
        switch (auth->code) {
          case pr::auth_code::ok: break;
          case pr::auth_code::cleartext_password:
            if (!login.password) co_return fail(no_password);
            pr::fe::serialize(pr::fe::password_message{*login.password}, out);
            break;
          case pr::auth_code::md5_password: {
            if (!login.password && !login.md5_secret) co_return fail(no_password);
            const std::string secret = login.password ? pr::md5_stored_secret(*login.password, login.user) : *login.md5_secret;
            pr::fe::serialize(pr::fe::password_message{pr::md5_response(secret, auth->payload)}, out);
            break;
          }
          case pr::auth_code::sasl: {
            if (!login.password && !login.scram_keys) {
              co_return fail(login.md5_secret ? "server asked for SCRAM but user \"" + login.user +
                                                    "\" is known to Meridian by an md5 hash only"
                                              : no_password);
            }
            auto mechs = pr::be::sasl_mechanisms(*auth);
            bool has_scram = false;
            if (mechs)
              for (auto m : *mechs) has_scram = has_scram || m == "SCRAM-SHA-256";
            if (!has_scram) co_return fail("server offers no SASL mechanism Meridian supports");
            if (login.password) {
              scram.emplace(*login.password);
            } else {
              scram.emplace(*login.scram_keys);
            }
            pr::fe::serialize(pr::fe::sasl_initial_response{"SCRAM-SHA-256", scram->client_first()}, out);
            break;
          }
          case pr::auth_code::sasl_continue: {
            if (!scram) co_return fail("unexpected SASL continuation");
            auto final_msg = scram->server_first(auth->payload);
            if (!final_msg) co_return fail(final_msg.error().message);
            pr::fe::serialize(pr::fe::sasl_response{*final_msg}, out);
            break;
          }
          case pr::auth_code::sasl_final:
            if (!scram || !scram->server_final(auth->payload)) co_return fail("server's SCRAM signature is invalid");
            break;
          default:
            co_return fail("server requested an unsupported authentication method");
        }
        if (!out.empty()) {
          co_await write(asio::buffer(out), ec);
          if (ec) co_return fail(ec.message());
        }
        break;
      }
      case pr::backend_type::parameter_status: {
        auto ps = pr::be::parse_parameter_status(msg->body);
        if (ps) params.insert_or_assign(lower(ps->name), std::string(ps->value));
        break;
      }
      case pr::backend_type::backend_key_data: {
        auto k = pr::be::parse_backend_key_data(msg->body);
        if (k) key = *k;
        break;
      }
      case pr::backend_type::error_response:
        co_return tl::unexpected(from_error_response(msg->body));
      case pr::backend_type::notice_response:
      case pr::backend_type::negotiate_protocol_version:
        break;
      case pr::backend_type::ready_for_query:
        in.consume(consumed_);
        consumed_ = 0;
        baseline = params;
        co_return tl::expected<void, server_error>{};
      default:
        co_return fail(std::string("unexpected message type '") + msg->type + "' during startup");
    }
  }
}

awaitable<tl::expected<void, server_error>> server_connection::run_internal_query(std::string sql,
                                                                                  std::size_t max_message,
                                                                                  query_rows* rows) {
  stop_watching();  // the answer is read here
  std::string out;
  pr::fe::serialize(pr::fe::query{sql}, out);
  error_code ec;
  co_await write(asio::buffer(out), ec);
  if (ec) co_return tl::unexpected(server_error{std::string(pr::sqlstate::connection_failure), ec.message()});
  std::optional<server_error> failure;
  for (;;) {
    auto msg = co_await read_message(max_message);
    if (!msg) co_return tl::unexpected(msg.error());
    if (msg->type == pr::backend_type::error_response) {
      failure = from_error_response(msg->body);
    } else if (msg->type == pr::backend_type::parameter_status) {
      auto ps = pr::be::parse_parameter_status(msg->body);
      if (ps) params.insert_or_assign(lower(ps->name), std::string(ps->value));
    } else if (msg->type == pr::backend_type::data_row && rows) {
      auto row = pr::be::parse_data_row(msg->body);
      if (!row) co_return tl::unexpected(server_error{std::string(pr::sqlstate::protocol_violation), row.error().message});
      auto& out_row = rows->emplace_back();
      for (const auto& c : row->columns) out_row.emplace_back(c ? std::string(*c) : std::string());
    } else if (msg->type == pr::backend_type::ready_for_query) {
      auto rfq = pr::be::parse_ready_for_query(msg->body);
      if (rfq) tx = rfq->status;
      in.consume(consumed_);
      consumed_ = 0;
      if (failure) co_return tl::unexpected(*failure);
      co_return tl::expected<void, server_error>{};
    }
  }
}

}  // namespace meridian::proxy
