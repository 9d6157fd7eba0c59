#pragma once
// One connection from Meridian to a PostgreSQL node: the socket, what the server told us at
// startup (parameters, backend key), what we know it holds (prepared statements, transaction
// state) and the requests in flight on it.
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "protocol/backend.hpp"
#include "protocol/framing.hpp"
#include "protocol/pipeline.hpp"
#include "proxy/asio.hpp"
#include "proxy/byte_buffer.hpp"
#include "proxy/handler_memory.hpp"
#include "proxy/quiet_read.hpp"
#include "proxy/statement_cache.hpp"
#include "protocol/scram.hpp"
#include "proxy/tls.hpp"
#include "routing/topology.hpp"

namespace meridian::proxy {

class pool;
class server_connection;
using server_conn_ptr = std::shared_ptr<server_connection>;

// Who takes what a watched connection receives: the session relaying from it.
class server_reader {
 public:
  virtual void on_server_data(server_conn_ptr sc, error_code ec, std::size_t n) = 0;

 protected:
  ~server_reader() = default;
};

using param_map = std::map<std::string, std::string, std::less<>>;
// A parameter set shared by identity (see param_sets in params.hpp).
using param_set = std::shared_ptr<const param_map>;
using query_rows = std::vector<std::vector<std::string>>;

// A failure talking to a server, with the SQLSTATE the client should see.
struct server_error {
  std::string sqlstate;
  std::string message;
};

struct server_login {
  std::string user;
  std::string database;
  std::optional<std::string> password;  // plain text, for md5 / SCRAM / cleartext challenges
  // Without the password (users found by auth.query): the md5 hash the server stores, which
  // answers an md5 challenge, and the SCRAM keys a client proved against the server's verifier.
  std::optional<std::string> md5_secret;
  std::optional<protocol::scram_keys> scram_keys;
  bool operator==(const server_login& o) const {
    return user == o.user && database == o.database && password == o.password && md5_secret == o.md5_secret &&
           (scram_keys.has_value() == o.scram_keys.has_value()) &&
           (!scram_keys || (scram_keys->client_key == o.scram_keys->client_key &&
                            scram_keys->server_key == o.scram_keys->server_key));
  }
};

class server_connection : public std::enable_shared_from_this<server_connection> {
 public:
  server_connection(asio::any_io_executor ex, routing::node_id node, std::size_t max_prepared);

  // TCP connect, StartupMessage, authentication, and everything up to the first ReadyForQuery,
  // all within `timeout`.
  // With `tls` (the node's sslmode is not disable), SSLRequest first, as libpq does.
  [[nodiscard]] awaitable<tl::expected<void, server_error>> establish(const routing::node& node,
                                                                      const server_login& login,
                                                                      std::chrono::milliseconds timeout,
                                                                      std::size_t max_message,
                                                                      std::shared_ptr<const upstream_tls> tls = nullptr);

  // The connection's byte stream, encrypted or not.
  // A coroutine's read (no watch may be pending then: see stop_watching).
  template <class Buffers>
  awaitable<std::size_t> read_some(const Buffers& buffers, error_code& ec) {
    stop_watching();
    if (tls) co_return co_await tls->async_read_some(buffers, asio::redirect_error(use_awaitable, ec));
    co_return co_await socket.async_read_some(buffers, asio::redirect_error(use_awaitable, ec));
  }
  template <class Buffers>
  awaitable<void> write(const Buffers& buffers, error_code& ec) {
    if (tls) {
      co_await asio::async_write(*tls, buffers, asio::redirect_error(use_awaitable, ec));
    } else {
      co_await asio::async_write(socket, buffers, asio::redirect_error(use_awaitable, ec));
    }
  }

  // Runs a simple query of Meridian's own (parameter sync, reset, catalog look-ups), keeping the
  // rows (NULL as "") when asked. Only for a connection with nothing in flight and no reader.
  [[nodiscard]] awaitable<tl::expected<void, server_error>> run_internal_query(std::string sql,
                                                                               std::size_t max_message,
                                                                               query_rows* rows = nullptr);

  // One read of the socket stays pending while a session relays from the connection and, over
  // plaintext, while the connection is idle in its pool: what it brings goes to `reader`, or
  // with none to the pool. An idle server never speaks first, so the pool learns at once of a
  // connection that is going away (terminated, restarted), and taking an idle connection needs
  // no liveness check of its own; nor does relaying start a read after every query.
  void watch();
  // Before Meridian reads in a coroutine of its own: the pending read ends without effect.
  void stop_watching();
  [[nodiscard]] bool watched() const { return watching_; }

  // Cheap liveness check before reuse: an idle server never speaks first, so readable data or
  // EOF means it is going away (terminated, restarted).
  [[nodiscard]] bool looks_alive();
  // Nothing in flight, no transaction open, no extended batch unfinished, no message half
  // forwarded: the connection could serve someone else.
  [[nodiscard]] bool quiescent() const {
    return pipeline.empty() && tx == protocol::tx_status::idle && !batch_open && passthrough == 0;
  }
  void close();

  tcp::socket socket;
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;  // set when the server accepted SSLRequest
  std::shared_ptr<const upstream_tls> tls_settings;      // the context `tls` was made from
  byte_buffer in{16384};
  protocol::pipeline pipeline;
  param_map params;    // current values of reported (and synced) parameters, lower-case names
  param_map baseline;  // values right after startup
  protocol::be::backend_key_data key;
  statement_cache statements;
  std::deque<std::string> parses_in_flight;  // server names of Parse requests awaiting an answer
  protocol::tx_status tx = protocol::tx_status::idle;
  std::size_t passthrough = 0;  // bytes of a large forwarded message still to come
  bool batch_open = false;      // extended-protocol messages sent since the last Sync
  bool tainted = false;         // carries state we cannot reset: close instead of reusing
  // Ran code that may have left session state Meridian cannot see (a function of the
  // application's, DO, CALL): reset before another client gets it.
  bool unseen_state = false;
  // The parameter set this connection is known to be in step with (null: unknown, compare).
  param_set synced;
  routing::node_id node;
  std::chrono::steady_clock::time_point created;
  std::chrono::steady_clock::time_point last_used;
  pool* owner = nullptr;
  std::shared_ptr<server_reader> reader;  // the session relaying from the connection, if any

 private:
  void on_watched(std::uint32_t generation, error_code ec, std::size_t n);
  // Room for a read to start with: never while one is pending (it holds the buffer's address).
  void make_room();
  bool watching_ = false;
  std::uint32_t watch_generation_ = 0;
  handler_memory watch_memory_;  // for the pending read's operation over TLS
  // The pending read over plaintext, and the generation it was started in (reads started before
  // the last stop_watching are stale).
  void start_quiet_watch();
  quiet_read quiet_watch_;
  std::uint32_t quiet_generation_ = 0;

  [[nodiscard]] awaitable<tl::expected<protocol::frame, server_error>> read_message(std::size_t max_message);
  // SSLRequest and the handshake; false (with the reason) when the connection cannot go on.
  [[nodiscard]] awaitable<tl::expected<void, std::string>> start_tls(const routing::node& n, const upstream_tls& tls);
  std::size_t consumed_ = 0;
};

}  // namespace meridian::proxy
