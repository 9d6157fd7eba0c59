#pragma once
// One client connection: start-up and authentication, then the query phase, where the client's
// messages are forwarded to a server connection checked out per transaction (or per session)
// and the server's answers are forwarded back. While a server is attached both directions run
// at once on the worker's single thread, each driven by completion handlers (the client's by
// wait_client, the server's by read_server); coroutines only for what has to wait. Where each
// statement goes is decided in one place, the session core (routing/session_core.hpp); this
// class carries out its steps. Its member functions are split by responsibility over
// proxy/session*.cpp (the list is in proxy/session_parts.hpp).
#include <array>
#include <deque>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "protocol/framing.hpp"
#include "protocol/startup.hpp"
#include "protocol/string_hash.hpp"
#include "proxy/asio.hpp"
#include "proxy/byte_buffer.hpp"
#include "proxy/cancel_registry.hpp"
#include "proxy/config.hpp"
#include "proxy/pool.hpp"
#include "proxy/quiet_read.hpp"
#include "proxy/server_connection.hpp"
#include "proxy/tls.hpp"
#include "proxy/user_directory.hpp"
#include "routing/recent_shapes.hpp"
#include "routing/primary_hold.hpp"
#include "routing/router.hpp"
#include "routing/session_core.hpp"

namespace meridian::proxy {

class worker;
class pool;
struct database_routing;

class session : public std::enable_shared_from_this<session>,
                public server_reader,
                public pool_waiter,
                public routing::statement_classifier {
 public:
  session(worker& w, tcp::socket socket);
  ~session();
  session(const session&) = delete;
  session& operator=(const session&) = delete;

  void start();
  // limits.startup_timeout passed before the client logged in (worker::watch_login): closed.
  void startup_expired();
  // At a forced stop (worker's destructor): the attached connection lets go of this session.
  void drop_server_reader();
  [[nodiscard]] std::chrono::steady_clock::time_point connected_at() const { return connected_at_; }
  // Forwards a cancel to the server running this client's query, if any. Session's thread only.
  void cancel_running_query();
  // Leave as soon as no transaction is open; a client that connected less than
  // shutdown_grace ago is asked once that much time has passed instead (it is about to use its
  // connection: refused now, its first statement would fail). Session's thread only.
  void request_shutdown();
  static constexpr std::chrono::seconds shutdown_grace{1};
  // A server connection is attached: a transaction (or a session-pooled session) is running.
  [[nodiscard]] bool attached() const { return attached_ != nullptr; }
  [[nodiscard]] const server_conn_ptr& attached_server() const { return attached_; }
  // SHOW CLIENTS: id, user, database, address, tls, state, node, connected seconds, consistency.
  [[nodiscard]] std::vector<std::string> client_row() const;
  [[nodiscard]] std::uint64_t id() const { return id_; }
  [[nodiscard]] const std::string& user() const { return user_; }
  [[nodiscard]] const std::string& database() const { return database_; }

 private:
  // A named prepared statement of this client, and the Parse that recreates it on any server.
  struct prepared_statement {
    std::string server_name;
    std::string parse_message;
    routing::classification cls;
    routing::hint hint = routing::hint::none;
  };
  // Where a piece of client-bound output comes from when a server chunk is relayed.
  struct segment {
    bool generated;
    std::size_t offset;
    std::size_t length;
  };
  struct chunk_result {
    std::size_t consumed = 0;
    std::size_t need = 0;
    const char* broken = nullptr;
  };

  // Start-up, then the query phase (serve or serve_console) spawned on its own; end() after.
  static awaitable<void> run(std::shared_ptr<session> self);
  void end();
  // Relaying the attached server's answers to the client (see session.cpp): the connection's
  // pending read (server_connection::watch), its completion, what follows once the client took
  // the output.
  void read_server(server_conn_ptr sc);
  void on_server_data(server_conn_ptr sc, error_code ec, std::size_t n) override;
  void relayed(server_conn_ptr sc, const chunk_result& chunk, bool written);
  static awaitable<void> write_then_relay(std::shared_ptr<session> self, server_conn_ptr sc, chunk_result chunk);
  // The server connection broke: ends the client's transaction (and connection) in a coroutine.
  void lose_server(server_conn_ptr sc, std::string why);
  static awaitable<void> lose_server_task(std::shared_ptr<session> self, server_conn_ptr sc, std::string why);
  // A connection no longer attached goes back to its pool or is closed; false when it must be
  // reset first (session pooling, a pinned session): reset_and_release.
  bool finish_server_now(const server_conn_ptr& sc, bool healthy);
  awaitable<void> reset_and_release(server_conn_ptr sc);
  static awaitable<void> reset_later(std::shared_ptr<session> self, server_conn_ptr sc);

  awaitable<bool> startup();
  awaitable<bool> read_startup_packet(protocol::startup_message& out_msg, std::string& storage);
  awaitable<bool> authenticate();
  // The query phase. A coroutine for what has to wait (a server to attach, a client or server
  // that cannot take output yet, an error to send before leaving); between a plaintext client's
  // messages it hands over to wait_client and returns true (still serving), false when the
  // session is over. With `client_gone`, only the goodbye: the client's wait ended without data.
  awaitable<bool> serve(bool client_gone);
  awaitable<void> client_left();
  void spawn_serve(bool client_gone);  // end() once serve returns false
  // The wait for a plaintext client's next message by a plain completion handler, and the
  // common turn after it without a coroutine: take the messages, forward them, write. Then wait
  // for the client again, or for a pooled connection (the session is in a pool's line and
  // on_handover goes on), or serve() must take over.
  void wait_client();
  void on_client_readable(error_code ec);
  // wait_server: the client's next message waits for the attached server's answers; relayed()
  // takes the turn up again.
  enum class turn { wait_client, queued, slow, wait_server };
  turn serve_quick();
  void continue_turn();  // serve_quick, then what it says
  // A pool's answer to this session waiting in its line (see attach_now).
  void on_handover(handover h) override;
  // A handed-over connection that needs the session's parameters set first.
  awaitable<bool> attach_handed(server_conn_ptr sc);
  // server_out_ to the attached server without waiting: true when it is all gone (sent, or
  // dropped with no server attached, or the write failed, which the server reader reports);
  // false with what is left in server_out_ (the socket is full, or TLS) for a waiting write.
  bool send_server_now();
  // The admin console (database "meridian"): its commands until the client leaves.
  awaitable<void> serve_console();
  // One read from the client into in_; false when the client is gone or the read was cancelled.
  // A plaintext client with nothing buffered is waited for without a receive buffer.
  awaitable<bool> read_client();
  // A non-blocking read of what the client sent, into in_ (with a buffer from the stock).
  enum class received { bytes, nothing, gone };
  received receive_client();
  void client_spoke(std::size_t n);  // n bytes arrived
  // The next whole client message in in_ (not consumed), or need_more (in_ made room for it),
  // or a violation to end the connection with 08P01: an unknown type, judged from its first
  // byte as PostgreSQL does, or a malformed or oversized frame. For serve and serve_console.
  struct client_frame {
    enum class status { ready, need_more, violation } state;  // violation: why is in violation_
    protocol::frame msg;
  };
  client_frame next_client_frame(std::size_t max_message);
  // serve()'s work between waits, as a plain function (a coroutine frame holds every local
  // across the session's life): handles the whole client messages in in_ and stops at the
  // first that needs a server no pool can give at once (`attach`, left in in_; `queued` when the
  // session waits in the pool's line for it), a violation, Terminate, or when no whole message
  // is left (`read_more`).
  struct client_step {
    // authorize: the front message may write or commits on the primary, and write authority has
    // lapsed: hold_for_authority decides. read_catalog: what routing knows of the database is
    // not read yet (or to be read again): read_catalog() first.
    enum class kind { read_more, attach, queued, violation, terminate, wait_server, authorize, read_catalog } what;  // violation: violation_
    routing::route_request request;  // attach: for the batch at the front of in_
  };
  bool waiting_server_ = false;  // the turn stopped at a core's wait_server step
  // Lets go of the attached server connection (the caller gives it back or closes it).
  void detach();
  // What the attached connection's request pipeline says, for the session core.
  [[nodiscard]] routing::session_core::server_state server_state() const;
  // Gives the attached connection back to its pool once the core says it is free.
  void release_attached();
  // Why the client's last message broke the protocol (kept here, off the per-message path).
  std::string violation_;
  client_step take_client_messages(std::size_t max_message);
  // No server for the batch at the front of in_: the client gets the error (and ReadyForQuery,
  // or the rest of its batch is skipped until Sync), and the message that asked is consumed.
  void refuse_batch(const server_error& err);
  // Answers an SSLRequest with 'S' already sent: the TLS handshake, as the server.
  awaitable<bool> start_tls();
  // A connection given back unused: to its pool when it is idle and open, else closed.
  static void give_back(server_conn_ptr& sc);
  // Checks out a server connection for `request` and attaches it (and with `spawn_reader`,
  // starts relaying its answers): waits for a pool slot, connects, waits for a replica to catch
  // up, brings the session's parameters to it, as needed.
  awaitable<std::optional<server_error>> attach(routing::route_request request, bool spawn_reader);
  // Work that may write goes to the primary only under write authority (routing::
  // write_authority): waits for it until `deadline` (coordination.write_wait); false when it
  // did not come. The refusal then, with SQLSTATE 57P03.
  awaitable<bool> await_write_authority(std::chrono::steady_clock::time_point deadline);
  // Work held for a failover (routing/primary_hold.hpp) waits here for a primary to try again:
  // until the topology names another primary or epoch, the primary is seen reachable again
  // (or not seen down) after a short while, or `until`.
  awaitable<void> await_primary(std::chrono::steady_clock::time_point until);
  // How long work for the primary waits for authority and for a failover (failover.hold_timeout
  // only with automatic failover: without it no new primary comes).
  [[nodiscard]] routing::primary_hold_settings hold_settings() const;
  // `rolled_back`: the refused work ended a transaction (the server connection was closed).
  [[nodiscard]] server_error write_authority_refusal(bool rolled_back = false, bool log = true) const;
  // The front message may write or commits on the attached primary, and write authority has
  // lapsed: it waits up to coordination.write_wait for authority to come back, then goes on;
  // else the server's answers to what was sent before it are relayed and the message's unit is
  // refused with 57P03. When the server is inside a block or batch of the client's, the server
  // connection is closed first (the server rolls back what was begun: nothing it wrote is
  // acknowledged); a pinned or session-pooled session ends then. False when the client is gone.
  awaitable<bool> hold_for_authority();
  // The same without a coroutine: `attached` when an idle connection was at hand with the
  // session's parameters; `queued` when the pool is at its size and the session now waits in
  // its line (on_handover goes on); `slow` when attach() must do it (connect, confirm a
  // replica's replay, set parameters, load function volatilities, wait out a PAUSE).
  enum class attaching { attached, queued, slow };
  attaching attach_now(const routing::route_request& request);
  void attach_to(server_conn_ptr sc, const routing::route_decision& decision, bool read, bool spawn_reader);
  // The request as this session's consistency level shapes it.
  [[nodiscard]] routing::route_request with_consistency(routing::route_request request) const;
  // What a statement needs (counted in the metrics), for the session core, which classifies
  // each statement once. The answer stays valid until the next call.
  [[nodiscard]] const routing::classification& classify_statement(std::string_view sql) override;
  // The consistency this connection asked for (meridian.consistency or meridian.routing), else
  // its user's or database's default.
  [[nodiscard]] routing::consistency consistency() const;
  // Read-your-writes: waits (bounded) until the replica behind `sc` has replayed the client's
  // last commit; false when it did not in time.
  awaitable<bool> replica_caught_up(server_connection& sc);
  // What the server runs instead of a statement about Meridian's own settings: a SET with a
  // value Meridian does not accept becomes a statement that fails with that error, in its place
  // in the pipeline; a SHOW becomes a SELECT of the value in force. "" to run it as it is.
  [[nodiscard]] std::string meridian_statement(std::string_view sql, const routing::classification& cls) const;
  awaitable<std::optional<server_error>> sync_params(server_connection& sc);
  // The SQL that brings `sc` to this session's parameters; "" when it has them (and it is then
  // marked as in step with this session).
  [[nodiscard]] std::string params_to_sync(server_connection& sc) const;
  // Read-your-writes: this session itself saw `node` replay its last commit.
  [[nodiscard]] bool replay_confirmed(routing::node_id node) const {
    return confirmed_node_ == node && confirmed_lsn_ >= commit_lsn_;
  }
  awaitable<void> on_server_lost(server_conn_ptr sc, const std::string& why);
  // Transaction pooling: the attached server was lost, and the client's connection goes on.
  // Each unit in flight on it gets its answer (routing/lost_work.hpp), in `out`; the session
  // core learns what is left of the client's transaction.
  // False when, instead, the unit in flight was put back in front of the client's messages, to run
  // again elsewhere (a read that nothing of its answer reached the client yet: retry_).
  bool answer_lost_work(server_connection& sc, const std::string& why, std::string& out);
  // The unit on the attached server, kept while it may run again elsewhere if the server is
  // lost: a read outside a transaction block, alone in flight, of which nothing has reached the
  // client. `ok` goes false when any of that stops being true.
  struct retry_state {
    bool ok = false;
    int times = 0;  // this unit was run again this many times (at most max_times)
    std::string bytes;
    // Statement names the unit's Parses gave the client (not in use before it): forgotten when
    // it runs again, so that its Parses are not refused as names in use (42P05).
    std::vector<std::string> named;
    static constexpr int max_times = 2;
    static constexpr std::size_t max_bytes = 64 * 1024;
  } retry_;
  // The message at the front of in_ (`m`, its step's `effect`) is about to go to the attached
  // server: kept in retry_ while its unit may run again.
  void keep_for_retry(const protocol::frame& m, std::uint8_t effect);
  // The answer PostgreSQL gives a message of an extended ROLLBACK batch (`first_byte`: of its
  // body, Describe's kind), to client_out_.
  void answer_rollback_message(char type, char first_byte);
  // One answer of routing/lost_work.hpp (without its ReadyForQuery), counted in the metrics.
  void append_lost_answer(std::string& out, routing::lost_answer answer);
  // Why the client's work was lost, for its answers (set when a server is lost under it).
  std::string lost_because_;
  // A server's FATAL that only says it is going away (57P0x) was kept from the client: the
  // connection is lost, and the client's session goes on (on_server_lost).
  std::string server_going_;
  awaitable<bool> write_client(const std::vector<asio::const_buffer>& buffers);
  // Client output written now when the socket takes it all (see send_now.hpp): done, the client
  // is gone, or `wait`: what is left (in `buffers`) needs write_client.
  enum class quick_write { done, closed, wait };
  quick_write write_client_now(std::vector<asio::const_buffer>& buffers);
  awaitable<bool> write_client(const std::string& bytes);
  awaitable<void> fatal(std::string_view sqlstate, std::string_view message);
  // Static with its own reference: the cancel may outlive the query, even the session.
  static awaitable<void> forward_cancel(std::shared_ptr<session> self, routing::node node,
                                        protocol::be::backend_key_data key);

  // Appends one client message (renamed where needed) to server_out_; false on a malformed message.
  // `classified`: the session core's classification of a Query or Parse (null for the rest).
  // False: a violation (violation_ says why).
  bool forward_client_message(const protocol::frame& m, const routing::classification* classified);
  void ensure_prepared(server_connection& sc, const prepared_statement& st);
  // The client's start-up parameters as the server spells their values (see session_login.cpp).
  awaitable<bool> spell_startup_params(const param_map& server);
  // A query on a connection of its own from the node a read would go to, given back after.
  awaitable<tl::expected<void, server_error>> run_on_read_node(const std::string& sql, query_rows* rows);
  // Reads the database's catalog (function_catalog_query) on a connection of its own, from the
  // node a read would go to, before the session's next statement is routed.
  awaitable<void> read_catalog();
  // DDL, and the end of a transaction that made objects: see statement_generation.
  void note_catalog_change(const server_connection& sc, const routing::classification& cls);
  bool tx_made_objects_ = false;
  // Names of the client's Parses refused with 42P05 (duplicate_parse_tag), oldest first.
  std::deque<std::string> duplicate_names_;
  bool batch_resets_all_ = false;  // the open batch parsed RESET ALL or DISCARD ALL
  // The statement makes relations only the primary can read: every worker learns them.
  void learn_primary_only(std::string_view sql);
  // The application's code that may leave state unseen runs on `sc`: it is reset before reuse
  // (pool.reset_after_functions).
  void note_unseen_state(server_connection& sc, const routing::classification& cls);
  // For `sql`, a lone DEALLOCATE (classification::deallocates): when it names one of the client's
  // own protocol-level statements, the statement to send instead, after a throwaway Parse (see
  // session.cpp); else nothing.
  std::optional<std::string> deallocate_instead(server_connection& sc, std::string_view sql);
  // Sends the statement's Parse (evicting the least recently used one if the connection is
  // full); `synthetic` when the client did not ask for it and its answer must be swallowed.
  void prepare_on(server_connection& sc, const prepared_statement& st, bool synthetic);
  // Records parameters a statement sets; flush_shows asks the server for their values once the
  // transaction they belong to (as far as this batch tells) is over.
  void note_settings(server_connection& sc, const routing::classification& cls);
  // Records the client's `type` (a Query, or the Sync of a batch) just sent, which ends in RESET
  // ALL or DISCARD ALL: the start-up parameters are set again on the connection by a synthetic
  // query behind it (params_to_sync).
  void sent_resetting_all(server_connection& sc, char type);
  // The connection runs (or has run) params_to_sync's SQL: it now holds the client's parameters.
  void note_synced(server_connection& sc) const;
  void flush_shows(server_connection& sc, routing::tx_effect tx);
  // A statement forwarded: counted, and noted when it writes on the primary.
  void note_statement(server_connection& sc, routing::target where);
  // Read-your-writes: after a batch of a transaction that wrote, asks the same server
  // connection for its WAL insert position (pipelined behind the batch, no extra round trip).
  void capture_commit_position(server_connection& sc);
  void capture_position(const protocol::frame& m);
  void answer_local_requests(server_connection& sc, std::string& out);
  chunk_result process_server_chunk(server_connection& sc);
  void reconcile_discarded(server_connection& sc);
  void capture_show(server_connection& sc, const protocol::frame& m, std::uint32_t tag);
  [[nodiscard]] bool releasable(const server_connection& sc) const;
  void close_client();
  // As PostgreSQL ends a session (be_tls_close): a TLS client is sent close_notify before the
  // connection closes, so that it reports the end it was told of, not a truncated stream.
  // Waits for the client's own close_notify (or its close) at most tls_close_wait.
  awaitable<void> close_client_gracefully();
  [[nodiscard]] pool_mode mode() const;

  worker& worker_;
  tcp::socket client_;
  std::shared_ptr<const server_tls> tls_config_;              // null: TLS not offered
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;      // set once the client asked for TLS
  std::uint64_t id_;
  // Where each of the client's messages runs and when the attached server is free again
  // (routing/session_core.hpp).
  routing::session_core core_;
  std::string peer_;          // address:port, for logs
  std::string peer_address_;  // address alone, for the login throttle
  std::chrono::steady_clock::time_point connected_at_ = std::chrono::steady_clock::now();
  bool logged_in_ = false;
  std::optional<std::list<session*>::iterator> login_watch_;  // in the worker's start-up deadlines
  void stop_login_watch();
  byte_buffer in_{0};  // storage from the worker's stock while there are bytes to read
  std::string client_out_;
  std::string server_out_;

  bool writing_ = false;
  std::string backlog_;
  std::string inflight_;
  std::unique_ptr<asio::steady_timer> drained_;  // made when a writer first waits for the backlog
  // limits.idle_in_transaction_timeout: armed while the server waits on the client inside a
  // transaction; when it fires the client is ended with 25P03 and the transaction rolled back.
  // Made when first armed (an idle session holds no timer).
  std::unique_ptr<asio::steady_timer> idle_in_tx_;
  bool idle_in_tx_expired_ = false;
  bool idle_in_tx_armed_ = false;
  void arm_idle_in_transaction(const server_connection& sc);
  bool client_closed_ = false;
  bool server_ended_session_ = false;  // a server's FATAL went to the client: it closes next
  std::uint64_t deallocations_ = 0;    // throwaway statements prepared for DEALLOCATE
  bool counted_ = false;
  bool admitted_ = false;  // counted in the per-user and per-database limits

  std::string user_;
  std::string database_;
  const user_config* user_cfg_ = nullptr;
  user_ptr looked_up_user_;  // owns *user_cfg_ for a user found by auth.query
  std::optional<protocol::scram_keys> proven_keys_;  // what the client proved, after SCRAM
  param_set wanted_;  // the client's view of its session parameters (lower-case names)
  param_set startup_params_;  // what RESET ALL returns to: the start-up parameters
  param_map meridian_settings_;  // meridian.consistency, meridian.routing: Meridian's own, never sent on
  param_map startup_meridian_settings_;
  // Parameters the client SET: Meridian asks the server for their resulting values (SHOW) once
  // the transaction they were set in is over, so a rolled-back SET is not replayed.
  std::vector<std::string> deferred_shows_;
  std::vector<std::string> show_names_;  // by the tag of the injected SHOW
  std::string show_value_;
  bool show_failed_ = false;
  routing::tx_effect batch_tx_ = routing::tx_effect::none;  // BEGIN/COMMIT seen in this extended batch
  std::optional<cancel_key> cancel_key_;

  std::unordered_map<std::string, prepared_statement, protocol::string_hash, std::equal_to<>> statements_;
  routing::target unnamed_class_ = routing::target::primary;  // of the last unnamed Parse

  server_conn_ptr attached_;
  // The wait for a plaintext client's next message (wait_client). It costs no system call while
  // the client's socket is known to be empty: the last read came back short or found nothing.
  quiet_read client_wait_;
  bool client_drained_ = false;
  // Where the batch waiting in a pool's line goes (attach_now → on_handover).
  struct queued_attach {
    routing::route_decision decision;
    bool read = false;
  } queued_;
  // Nodes a waiting read skipped since the session last attached (on_handover): at most two.
  int read_skips_ = 0;
  // The primary could not be reached for the batch that waited in its pool's line: attach()
  // takes the batch next, and holds it for the failover (attach_now would queue it again).
  bool attach_slowly_ = false;
  bool server_writing_ = false;
  bool skipping_until_sync_ = false;
  routing::consistency default_consistency_ = routing::consistency::eventual;  // the user's or database's
  bool on_replica_ = false;  // the attached connection serves as a replica
  // Read-your-writes: the WAL position at or after this client's last commit; reads need a
  // node that has replayed it. The transaction on the attached primary connection wrote.
  routing::lsn commit_lsn_;
  bool tx_wrote_ = false;
  bool batch_copy_in_ = false;      // the extended batch being forwarded holds a COPY FROM STDIN
  bool capture_after_copy_ = false;  // ask for the position once the client's COPY data is sent
  std::optional<routing::lsn> captured_;  // answer of the position query in flight
  std::string held_ready_;  // the client's ReadyForQuery, forwarded once Meridian's follow-up queries are answered
  // A replica seen at or past commit_lsn_ by this session (the monitor may not know yet).
  std::optional<routing::node_id> confirmed_node_;
  routing::lsn confirmed_lsn_;
  bool ended_ = false;
  bool shutdown_requested_ = false;
  // Query and transaction latency (metrics) and log.slow_statement: when the batch now on the
  // server was sent and what it began with (when slow statements are logged with their text);
  // when the transaction it belongs to began.
  bool batch_timed_ = false;
  std::chrono::steady_clock::time_point batch_sent_{};
  std::string batch_text_;
  bool tx_timed_ = false;
  std::chrono::steady_clock::time_point tx_began_{};
  void time_batch(std::string_view sql);
  void batch_done(const server_connection& sc);

  // What this session classified lately (see classify_statement()).
  routing::recent_shapes shapes_;
  // classify_statement()'s answer for a statement too long to remember.
  std::unique_ptr<routing::classification> unremembered_;
  // The worker's routing state of this session's database, found once (the worker keeps it
  // while it runs) rather than looked up by name per statement.
  database_routing* database_routing_ = nullptr;
  database_routing& routing_state();
  // The pools of the last two nodes this session used (the worker keeps its pools while it
  // runs): a transaction finds its pool without building and hashing a key of user and
  // database. Two, because a session reads from one node and writes to another.
  struct pool_slot {
    routing::node_id node;
    pool* p = nullptr;
  };
  std::array<pool_slot, 2> recent_pools_{};
  pool& pool_of(routing::node_id node);

  std::vector<segment> segments_;
  std::string generated_;
  std::vector<asio::const_buffer> buffers_;  // the server reader's, to the client
};

}  // namespace meridian::proxy
