#pragma once
// SCRAM-SHA-256 (RFC 5802, RFC 7677) as PostgreSQL uses it: both the server side (authenticating
// clients against a stored verifier) and the client side (authenticating to a server).
// Pure computation; the caller moves the messages. Over TLS the server also offers
// SCRAM-SHA-256-PLUS with tls-server-end-point channel binding (RFC 5929).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/result.hpp"

namespace meridian::protocol {

using sha256_digest = std::array<unsigned char, 32>;

[[nodiscard]] std::string base64_encode(std::string_view raw);
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view text);

// "SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>", as pg_authid stores it.
struct scram_verifier {
  int iterations = 0;
  std::string salt;  // raw bytes
  sha256_digest stored_key{};
  sha256_digest server_key{};

  [[nodiscard]] static std::optional<scram_verifier> parse(std::string_view text);
  [[nodiscard]] static scram_verifier from_password(std::string_view password, std::string_view salt, int iterations);
  [[nodiscard]] std::string to_string() const;
};

// What proves knowledge of a password to a server that stores `scram_verifier`: ClientKey,
// and ServerKey to check the server's answer. A server side recovers ClientKey from a
// successful client proof, so a proxy that holds only the verifier (read with an auth query)
// can log in to servers with the same verifier as that client.
struct scram_keys {
  sha256_digest client_key{};
  sha256_digest server_key{};
};

// Outcome of a failed server-side step: a malformed message (08P01) or a wrong proof (28P01).
// channel_binding: the client's binding data did not match, it asked for a binding type we do
// not have, or it claimed the server offered none (a downgrade).
enum class scram_failure { malformed, wrong_proof, channel_binding };

class scram_server {
 public:
  // server_nonce: left empty to generate 18 random bytes; set by tests for RFC vectors.
  // channel_binding: the tls-server-end-point data when the client connected over TLS.
  explicit scram_server(scram_verifier verifier, std::string server_nonce = {},
                        std::optional<std::string> channel_binding = std::nullopt);

  // client-first-message → server-first-message; plus: the client chose SCRAM-SHA-256-PLUS.
  [[nodiscard]] tl::expected<std::string, scram_failure> client_first(std::string_view message, bool plus = false);
  // client-final-message → server-final-message
  [[nodiscard]] tl::expected<std::string, scram_failure> client_final(std::string_view message);
  // After a successful client_final: the client's keys, recovered from its proof.
  [[nodiscard]] std::optional<scram_keys> proven_keys() const { return proven_; }

 private:
  scram_verifier verifier_;
  std::string server_nonce_;
  std::optional<std::string> channel_binding_;
  bool bound_ = false;  // the client bound the exchange to the channel ("p=")
  std::string gs2_header_;
  std::string client_first_bare_;
  std::string server_first_;
  std::string combined_nonce_;
  std::optional<scram_keys> proven_;
};

class scram_client {
 public:
  // user is sent in the n= attribute; PostgreSQL ignores it and libpq leaves it empty.
  // channel_binding: tls-server-end-point data to bind to (SCRAM-SHA-256-PLUS), if any.
  explicit scram_client(std::string password, std::string user = {}, std::string client_nonce = {},
                        std::optional<std::string> channel_binding = std::nullopt);
  // Without the password: keys a client proved against the server's own verifier.
  explicit scram_client(scram_keys keys, std::string client_nonce = {});

  [[nodiscard]] std::string client_first();
  // server-first-message → client-final-message (or a description of what was wrong)
  [[nodiscard]] result<std::string> server_first(std::string_view message);
  // True when the server proved it knows the verifier.
  [[nodiscard]] bool server_final(std::string_view message) const;

 private:
  std::string password_;
  std::optional<scram_keys> keys_;
  std::string user_;
  std::string client_nonce_;
  std::optional<std::string> channel_binding_;
  std::string gs2_header_ = "n,,";
  std::string client_first_bare_;
  sha256_digest server_signature_{};
};

}  // namespace meridian::protocol
