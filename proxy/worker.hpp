#pragma once
// One thread, one io_context, its own listener (SO_REUSEPORT spreads connections across
// workers) and its own pools: a client and the server connection it uses live on the same
// thread, so the data path takes no lock.
#include <atomic>
#include <list>
#include <memory>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "proxy/asio.hpp"
#include "proxy/byte_buffer.hpp"
#include "proxy/cancel_registry.hpp"
#include "proxy/client_limits.hpp"
#include "proxy/config.hpp"
#include "proxy/console.hpp"
#include "proxy/login_throttle.hpp"
#include "proxy/user_directory.hpp"
#include "proxy/metrics.hpp"
#include "proxy/params.hpp"
#include "proxy/pool.hpp"
#include "proxy/tls.hpp"
#include "routing/classification_cache.hpp"
#include "routing/router.hpp"
#include "routing/topology.hpp"
#include "routing/write_authority.hpp"

namespace meridian::proxy {

class session;
class worker;

// What routing needs per database: function volatilities from that database's pg_proc (loaded
// from the primary on first use) and the classification cache built on them.
struct database_routing {
  database_routing(std::size_t cache_size, routing::volatility_ptr functions)
      : cache(cache_size, std::move(functions)) {}
  routing::classification_cache cache;
  bool functions_loaded = false;
  bool loading = false;
  std::chrono::steady_clock::time_point loaded_at{};
  std::chrono::steady_clock::time_point retry_at{};  // after a failed read of the catalog
  // Whether a session should read the catalog before it routes its next statement.
  [[nodiscard]] bool catalog_due() const {
    return !functions_loaded && !loading && std::chrono::steady_clock::now() >= retry_at;
  }
};

// State every worker shares. Besides the cancel registry and counters, the configuration and
// the TLS material change after start: replaced whole on reload, read as snapshots.
struct shared_state {
  std::atomic<config_ptr> cfg;  // the one in force; each worker also holds its own copy
  std::unique_ptr<metrics> stats;
  std::atomic<std::shared_ptr<const tls_material>> tls{std::make_shared<const tls_material>()};
  cancel_registry cancels;
  client_limits limits;
  login_throttle logins;
  user_directory users;  // auth.query look-ups
  std::atomic<std::size_t> clients{0};
  std::atomic<std::uint64_t> next_session_id{1};
  std::atomic<std::uint64_t> cancels_forwarded{0};
  // Until when work that may write may go to the primary (renewed through etcd by the
  // coordinator's write_lease; forever without etcd).
  routing::write_authority authority;
  // Every worker, set once before any runs: what one learns of a database's catalog, it tells
  // the others (worker::learn_primary_only, worker::catalog_changed).
  std::vector<worker*> workers;
  // Part of every server-side prepared statement's name: moved on by what may drop or change
  // an object a statement was planned with (DROP, ALTER, the rollback of a transaction that
  // made objects), so that statements prepared after it are prepared anew, never reused.
  std::atomic<std::uint64_t> statement_generation{0};
  shared_state() { authority.grant_forever(); }
};

// What Meridian reads of a database's functions, once per worker: name, volatility, and for a
// volatile function of the application's (outside pg_catalog and information_schema)
// "stateful" when it may leave session state behind, else its body (comments dropped) for
// routing::function_volatility to settle which others call a stateful one; '' for the rest. Stateful: not SQL or PL/pgSQL, or its body sets a
// parameter (set_config, or SET/RESET where a statement starts), makes a temporary table,
// listens, prepares, takes a session advisory lock, reseeds random(), declares a WITH HOLD
// cursor, uses dblink, or runs dynamic SQL (EXECUTE). Conservative: a word in a string or a
// column named `temp` also counts. Then a row per trigger of the application's: its function's
// name, 't', and the relation it is on (schema.name); and one per enabled event trigger: its
// function's name, 'e', ''; and one per relation only the primary can read (unlogged, or a view
// or partitioned table over one, to any depth): its name, 'u', schema.name.
inline constexpr std::string_view function_catalog_query = R"(SELECT p.proname, p.provolatile::text,
  CASE
    WHEN p.pronamespace IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace) OR p.provolatile <> 'v' THEN ''
    WHEN l.lanname NOT IN ('sql', 'plpgsql') THEN 'stateful'
    WHEN b.body ~* '(set_config|advisory_lock|setseed|\mtemp(orary)?\M|\m(un)?listen\M|\mprepare\M|\mdeallocate\M|\mexecute\M|\mdiscard\M|\mhold\M|dblink|(^|;|\mbegin|\mthen|\melse|\mloop)\s*(set|reset)\M)'
      THEN 'stateful'
    ELSE b.body
  END
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
CROSS JOIN LATERAL (SELECT pg_catalog.regexp_replace(pg_catalog.regexp_replace(
    coalesce(nullif(p.prosrc, ''), pg_catalog.pg_get_function_sqlbody(p.oid), ''),
    '--[^\n]*', '', 'g'), '/\*.*?\*/', '', 'g') AS body) b
UNION ALL
SELECT p.proname, 't', n.nspname || '.' || c.relname
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
WHERE NOT t.tgisinternal
UNION ALL
SELECT p.proname, 'e', ''
FROM pg_catalog.pg_event_trigger e
JOIN pg_catalog.pg_proc p ON p.oid = e.evtfoid
WHERE e.evtenabled <> 'D'
UNION ALL
SELECT c.relname, 'u', n.nspname || '.' || c.relname
FROM (WITH RECURSIVE unreadable(oid) AS (
        SELECT oid FROM pg_catalog.pg_class WHERE relpersistence = 'u' AND relkind IN ('r', 'p', 'S', 'm')
        UNION
        SELECT edge.dependent FROM (
            SELECT d.refobjid AS used, r.ev_class AS dependent
            FROM pg_catalog.pg_depend d
            JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
            JOIN pg_catalog.pg_class v ON v.oid = r.ev_class AND v.relkind = 'v'
            WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
            UNION ALL
            SELECT inhrelid, inhparent FROM pg_catalog.pg_inherits) edge
        JOIN unreadable u ON u.oid = edge.used)
      SELECT oid FROM unreadable) u
JOIN pg_catalog.pg_class c ON c.oid = u.oid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace)";

class worker {
 public:
  worker(shared_state& shared, unsigned index, routing::topology_ptr topology);
  ~worker();
  worker(const worker&) = delete;
  worker& operator=(const worker&) = delete;

  // Binds the listener; throws on failure (port in use) so start-up fails loudly.
  void listen();
  void run();
  // Stop accepting; ask sessions to finish their transactions and leave. Thread-safe.
  void begin_shutdown();

  [[nodiscard]] pool& pool_for(const pool_key& key, const user_config* user);
  // A user found by auth.query logged in: its pools log in to servers with what it has now.
  void refresh_logins(const user_config& user);
  // A user not in the config, looked up with auth.query on the primary (cached in
  // shared().users): the user, null when there is no such user, or why the look-up failed.
  [[nodiscard]] awaitable<tl::expected<user_ptr, std::string>> look_up_user(std::string name);
  [[nodiscard]] database_routing& database(const std::string& name);
  // Function volatilities read from a database's pg_proc: the rows of function_catalog_query.
  void set_functions(const std::string& database, const std::vector<std::vector<std::string>>& rows);
  // A statement is about to make these relations ones only the primary can read: this worker
  // routes their reads there from now on, every other worker as soon as it is told (posted).
  void learn_primary_only(const std::string& database, const std::vector<std::string>& relations);
  // A replica refused a read of something only the primary can read that the catalog did not
  // show (made elsewhere): every worker reads it again on its next use (at most ten times a second).
  void catalog_changed(const std::string& database);
  [[nodiscard]] routing::route_context route_context() const;
  // Whether this Meridian holds write authority over the epoch of this worker's topology.
  [[nodiscard]] bool may_write(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) const {
    return shared_.authority.allows(topology().epoch, now);
  }
  // A replica that refused connections is skipped for routing.replica_retry.
  void skip_node(routing::node_id node);
  [[nodiscard]] const config& cfg() const { return *cfg_; }
  // A reloaded configuration, on this worker's thread (post it here): logins, limits and routing
  // settings use it from now on, pools take their new size at once and their new credentials
  // from their next connection. Snapshots are never freed while Meridian runs (see main.cpp),
  // so sessions may keep pointing into the one they started with.
  void apply_config(config_ptr c);
  [[nodiscard]] const routing::topology& topology() const { return *topology_; }
  // A new snapshot from the node monitor. Worker's thread only (post it there).
  void set_topology(routing::topology_ptr t);
  [[nodiscard]] shared_state& shared() { return shared_; }
  // What this worker counts for /metrics (only its thread writes it).
  [[nodiscard]] worker_meter& meter() { return meter_; }
  [[nodiscard]] asio::io_context& io() { return io_; }
  // Client receive buffers not in use: a session holds one only while it has bytes to read.
  [[nodiscard]] buffer_stock& client_buffers() { return client_buffers_; }
  // How the server spells a parameter's value as a client gave it (`timezone`, `europe/paris`
  // → `Europe/Paris`), as learned from set_config; nullopt when not learned yet.
  [[nodiscard]] std::optional<std::string> server_spelling(std::string_view name, std::string_view value) const;
  void learn_spelling(std::string_view name, std::string_view value, std::string spelled);
  // Session parameter sets of this worker's clients, shared by identity.
  [[nodiscard]] param_sets& parameter_sets() { return parameter_sets_; }
  [[nodiscard]] bool draining() const { return draining_; }
  [[nodiscard]] unsigned index() const { return index_; }

  // PAUSE: transactions that have not started wait (up to their deadline) until resume();
  // those running go on. Worker's thread only (post there).
  void pause() { paused_ = true; }
  void resume();
  [[nodiscard]] bool paused() const { return paused_; }
  // Waits while paused; false when the deadline passed first.
  awaitable<bool> wait_resumed(std::chrono::steady_clock::time_point deadline);
  // Sessions with a server connection attached right now (transactions in flight).
  [[nodiscard]] std::size_t active_transactions() const;

  // SHOW POOLS, CLIENTS, SERVERS: this worker's rows (see console.cpp for the columns), made on
  // its own thread; call through co_spawn on io() from elsewhere.
  awaitable<std::vector<std::vector<std::string>>> console_rows(console_command c);
  // Where console commands get their data (set once at start; null: no console).
  void set_console(console_backend* c) { console_ = c; }
  [[nodiscard]] console_backend* console() const { return console_; }

  void add_session(session* s) { sessions_.insert(s); }
  // limits.startup_timeout for the clients not logged in yet: kept in the order they connected
  // under one timer, so a client that has connected but not spoken holds no timer of its own.
  // The session unwatches itself once logged in (or gone); past the deadline it is closed.
  using login_watch = std::list<session*>::iterator;
  [[nodiscard]] login_watch watch_login(session* s);
  void unwatch_login(login_watch w) { logins_.erase(w); }
  void remove_session(session* s);

 private:
  void add_primary_only(const std::string& database, const std::vector<std::string>& relations);
  void forget_catalog(const std::string& database);
  // Runs f(worker&) on every other worker, on its own thread (posted).
  template <class F>
  void tell_others(F f);
  awaitable<void> accept_loop();
  awaitable<void> sweep_loop();
  void maybe_stop();

  shared_state& shared_;
  config_ptr cfg_;
  unsigned index_;
  worker_meter& meter_;
  // One thread runs it, and every socket on it is used from that thread only (other threads
  // post here): the reactor's per-descriptor locks are off. The scheduler keeps its lock, for
  // those posts.
  asio::io_context io_{BOOST_ASIO_CONCURRENCY_HINT_UNSAFE_IO};
  buffer_stock client_buffers_{4096, 64};
  tcp::acceptor acceptor_{io_};
  asio::steady_timer sweep_timer_{io_};
  routing::topology_ptr topology_;
  std::unordered_map<pool_key, std::unique_ptr<pool>, pool_key_hash> pools_;
  std::unordered_set<session*> sessions_;
  std::list<session*> logins_;  // not logged in yet, oldest first
  asio::steady_timer login_timer_{io_};
  bool login_timer_armed_ = false;
  void arm_login_timer();
  console_backend* console_ = nullptr;
  param_sets parameter_sets_;
  std::unordered_map<std::string, std::string> spellings_;  // name '=' value → the server's
  std::unordered_map<std::string, std::unique_ptr<database_routing>> databases_;
  std::vector<std::chrono::steady_clock::time_point> skipped_until_;
  bool draining_ = false;
  bool paused_ = false;
  std::vector<asio::steady_timer*> pause_waiters_;
};

}  // namespace meridian::proxy
