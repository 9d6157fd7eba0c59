#pragma once
// Meridian's configuration, loaded from YAML. Loading validates everything and throws
// config_error naming the offending key; a running process holds it as an immutable snapshot.
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/scram.hpp"
#include "routing/router.hpp"
#include "routing/topology.hpp"

namespace meridian::proxy {

struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class pool_mode { transaction, session };
enum class auth_method { trust, md5, scram_sha_256 };

struct user_config {
  std::string name;
  // What clients must prove: plain text, an "md5…" hash or a "SCRAM-SHA-256$…" verifier.
  std::string secret;
  // Plain-text password Meridian uses to log in to servers (defaults to secret when that is plain).
  std::optional<std::string> server_password;
  std::optional<pool_mode> mode;  // per-user pool mode override
  std::optional<routing::consistency> consistency;  // per-user override
  // Users found by auth.query: the keys a client proved with SCRAM, with which Meridian logs in
  // to the servers as that user (their verifier is the one the query returned).
  std::optional<protocol::scram_keys> server_scram_keys;
  bool from_auth_query = false;
};

// Clients not listed in `users` are looked up on the primary, as PgBouncer's auth_query: the
// query returns the user's name and stored secret (pg_authid's SCRAM verifier or md5 hash).
struct auth_query_config {
  std::string user;  // a listed user Meridian runs the query as; empty: no look-ups
  std::string query = "SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = $1";
  std::string database = "postgres";
  std::chrono::milliseconds cache{60'000};  // how long a looked-up secret (or its absence) is kept
  [[nodiscard]] bool enabled() const { return !user.empty(); }
};

struct database_config {
  std::string name;
  std::optional<routing::consistency> consistency;
};

// The node monitor's connections (off when no user is configured).
struct monitor_config {
  std::string user;
  std::string password;
  std::string database = "postgres";
  std::string sslmode = "prefer";
  std::chrono::milliseconds interval{250};
  std::chrono::milliseconds timeout{1000};
  [[nodiscard]] bool enabled() const { return !user.empty(); }
};

// Coordination of the regional Meridians through etcd (none: this instance decides alone).
struct coordination_config {
  std::vector<std::string> etcd;  // host:port of etcd's members, this region's first
  std::string cluster = "meridian";  // keys live under /meridian/<cluster>/
  std::chrono::seconds lease_ttl{3};
  std::size_t regions = 0;  // Meridians' regions taking part; 0: the regions of the nodes
  // Write authority ends this long before lease_ttl after each renewal (clock drift + a round
  // trip).
  std::chrono::milliseconds authority_margin{500};
  // A write with no authority to go to the primary waits this long for it, then fails (57P03).
  std::chrono::milliseconds write_wait{2000};
};

// Failover: detection, promotion, repointing, fencing (off without a user).
struct failover_config {
  bool automatic = true;
  std::string user;
  std::string password;
  std::string database = "postgres";
  std::string sslmode = "prefer";
  std::chrono::milliseconds detection{2000};
  // The same when the regions' probes are refused (nothing listens on the primary's port: its
  // postmaster is gone), which a cut link never does.
  std::chrono::milliseconds detection_refused{500};
  std::vector<std::string> candidate_order;
  // Nearness to the lost primary: the round trips the regions' node monitors measured (true),
  // candidate_order breaking ties; or candidate_order alone (false).
  bool measured_distance = true;
  // The nearest replica catches up from one at most this far ahead, then is promoted.
  std::uint64_t prefer_ahead_bytes = 1 << 20;
  std::chrono::milliseconds catch_up_timeout{5'000};
  std::uint64_t max_data_loss_bytes = 0;
  std::chrono::milliseconds promote_timeout{30'000};
  // Work bound for a lost primary (it refuses connections, or a failover is ending its epoch)
  // waits up to this long for the new one instead of failing; 0: it fails at once.
  std::chrono::milliseconds hold_timeout{15'000};
  // How many clients may hold such work at once; the next is refused (57P03).
  std::size_t hold_clients = 1000;
  std::chrono::milliseconds repoint_timeout{30'000};
  std::string primary_conninfo = "host={host} port={port} user=replicator application_name={name}";
  std::string promote_command;  // instead of pg_promote() (RDS: aws rds promote-read-replica …)
  std::string repoint_command;  // instead of ALTER SYSTEM SET primary_conninfo
  std::string fence_command;    // instead of read-only + terminating sessions
  std::string rejoin_command;   // makes a fenced old primary a replica again (pg_rewind, RDS recreate)
  [[nodiscard]] bool enabled() const { return !user.empty(); }
};

// TLS with clients: disable (SSLRequest answered N), allow (TLS for clients that ask), or
// required (a client that does not ask is refused, 28000).
enum class client_tls { disable, allow, required };

struct tls_config {
  client_tls client = client_tls::disable;
  std::string cert_file;
  std::string key_file;
  std::string min_version = "1.3";  // "1.2" or "1.3"
};

// TLS to a PostgreSQL node, as libpq's sslmode and sslrootcert.
struct server_tls_config {
  std::string sslmode = "prefer";  // disable | prefer | require | verify-ca | verify-full
  std::string root_cert;           // CA certificates for verify-ca and verify-full
};

struct config {
  std::string region;
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 6432;
  unsigned threads = 1;

  std::vector<routing::node> nodes;

  pool_mode mode = pool_mode::transaction;
  std::size_t pool_size = 20;  // server connections per (node, user, database), all threads together
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds idle_timeout{600'000};
  std::chrono::milliseconds wait_timeout{30'000};
  std::chrono::milliseconds server_lifetime{3'600'000};
  std::size_t max_prepared_per_server = 500;
  std::string reset_query = "DISCARD ALL";
  // Reset a connection that ran DO, CALL or a volatile function of the application's before
  // another client gets it (what such code leaves in the session is not seen).
  bool reset_after_functions = true;

  std::size_t max_clients = 10'000;
  std::size_t max_clients_per_user = 0;      // 0: no limit
  std::size_t max_clients_per_database = 0;  // 0: no limit
  std::size_t max_message_bytes = 64u << 20;
  std::chrono::milliseconds startup_timeout{10'000};
  std::chrono::milliseconds idle_in_transaction_timeout{0};  // 0: none
  // Failed logins per client address and user (see login_throttle).
  std::size_t max_auth_failures = 10;                    // then locked out for the window; 0: never
  std::chrono::milliseconds auth_failure_window{60'000};
  std::chrono::milliseconds auth_failure_delay{250};     // first failure's delay, doubling; 0: none
  std::chrono::milliseconds auth_failure_max_delay{5'000};
  std::chrono::milliseconds shutdown_timeout{30'000};

  routing::consistency consistency = routing::consistency::eventual;
  std::chrono::milliseconds max_lag{200};  // default per-node lag limits
  std::uint64_t max_lag_bytes = 0;
  double lag_readmit_ratio = 0.5;
  std::vector<std::string> replica_order;  // tie-break among replicas at about the same latency
  // read-your-writes: how long a read waits for the preferred replica to replay the client's
  // last commit before it goes to the primary.
  std::chrono::milliseconds read_your_writes_wait{100};
  std::vector<std::string> read_only_functions;  // treated as safe on replicas whatever pg_proc says
  std::size_t classification_cache_size = 10'000;  // per worker thread and database
  std::chrono::milliseconds replica_retry{1000};   // a replica that refused connections is skipped this long

  monitor_config monitor;
  coordination_config coordination;
  failover_config failover;

  auth_method auth = auth_method::scram_sha_256;
  auth_query_config auth_query;
  tls_config tls;
  server_tls_config server_tls;             // every node's, unless the node says otherwise
  std::vector<server_tls_config> node_tls;  // per node, in the order of `nodes` (node id)
  std::vector<user_config> users;
  std::vector<database_config> databases;  // per-database defaults

  std::string log_level = "info";
  bool log_json = false;                        // one JSON object per line instead of text
  std::chrono::milliseconds slow_statement{0};  // log batches slower than this; 0: none
  bool log_statement_text = false;              // with their text (may hold data: off by default)
  std::size_t log_statement_max = 200;          // characters of it at most

  // The admin API (meridianctl); port 0 means none. Its bearer token is required.
  std::string admin_host = "127.0.0.1";
  std::uint16_t admin_port = 0;
  std::string admin_token;
  // Users (from `users`) who may log in to the admin console, the virtual database "meridian".
  std::vector<std::string> admin_users;

  // Prometheus endpoint; port 0 means none.
  std::string metrics_host = "127.0.0.1";
  std::uint16_t metrics_port = 0;

  [[nodiscard]] const user_config* find_user(std::string_view name) const;
  // The consistency for a user and database: the user's, else the database's, else the default.
  [[nodiscard]] routing::consistency consistency_for(const user_config* user, std::string_view database) const;
};

using config_ptr = std::shared_ptr<const config>;

[[nodiscard]] config load_config_file(const std::string& path);
[[nodiscard]] config load_config_string(const std::string& yaml, const std::string& base_dir = ".");

// "250ms", "5s", "10m", "1h", or a bare number of seconds.
[[nodiscard]] std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);
// "64MiB", "512KiB", "1GiB", "100kB", or a bare number of bytes.
[[nodiscard]] std::optional<std::size_t> parse_size(std::string_view text);

// PgBouncer's userlist format: one `"name" "secret"` per line, '"' doubled inside; ';' comments.
[[nodiscard]] std::vector<user_config> parse_userlist(const std::string& text, const std::string& source);

}  // namespace meridian::proxy
