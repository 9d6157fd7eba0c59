#pragma once
// TLS towards clients: the server context built from the configured certificate and key, and
// what SCRAM channel binding needs from it. Built once at start (and again on reload); sessions
// hold the shared pointer they started with.
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ssl.hpp>

#include "proxy/asio.hpp"
#include "proxy/config.hpp"

namespace meridian::proxy {

struct server_tls {
  // Mutable because Asio's stream takes a non-const context to make each connection's SSL
  // from it; OpenSSL's SSL_new on a shared, configured SSL_CTX is thread-safe.
  mutable asio::ssl::context context{asio::ssl::context::tls_server};
  // tls-server-end-point channel binding data (RFC 5929): the hash of the server certificate,
  // with its signature's hash algorithm (SHA-256 where that is MD5 or SHA-1).
  std::string end_point_hash;
};

// TLS towards one PostgreSQL node: its sslmode and the client context (CA loaded for the
// verifying modes). Null for sslmode disable.
struct upstream_tls {
  std::string mode;
  mutable asio::ssl::context context{asio::ssl::context::tls_client};
};
[[nodiscard]] std::shared_ptr<const upstream_tls> make_upstream_tls(const server_tls_config& cfg);

// Throws config_error with the reason (unreadable files, a key that does not match, ...).
[[nodiscard]] std::shared_ptr<const server_tls> make_server_tls(const tls_config& cfg);

// Every TLS context of a running Meridian, built from one config and replaced whole when a
// reload (SIGHUP) brings new certificates; connections keep the contexts they started with.
struct tls_material {
  std::shared_ptr<const server_tls> client;                  // null when client TLS is disabled
  std::vector<std::shared_ptr<const upstream_tls>> nodes;    // per node id; null: plaintext
  [[nodiscard]] std::shared_ptr<const upstream_tls> node(std::size_t id) const {
    return id < nodes.size() ? nodes[id] : nullptr;
  }
};
// Reads every certificate, key and CA file `cfg` names. Throws config_error naming the one
// that failed, so a bad reload leaves the running material untouched.
[[nodiscard]] std::shared_ptr<const tls_material> load_tls_material(const config& cfg);

// The tls-server-end-point hash of a certificate; empty if it cannot be computed.
[[nodiscard]] std::string certificate_end_point_hash(X509* cert);

}  // namespace meridian::proxy
