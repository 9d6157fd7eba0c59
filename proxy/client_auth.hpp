#pragma once
// Authenticating a client to Meridian: a small state machine that produces the Authentication*
// messages to send and consumes the client's 'p' messages. No I/O.
//
// Method choice follows PostgreSQL: with md5 configured, a user whose secret is a SCRAM verifier
// authenticates with SCRAM; with scram-sha-256 configured, an md5-hashed secret cannot be used.
// Unknown users go through the same exchange against a fake secret and fail at the end with the
// same error as a wrong password, so a client cannot probe which users exist.
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/scram.hpp"
#include "proxy/config.hpp"

namespace meridian::proxy {

class client_authenticator {
 public:
  enum class state { in_progress, succeeded, failed };

  struct step {
    state outcome = state::in_progress;
    std::string to_client;       // messages to send now (serialized)
    std::string sqlstate;        // on failure
    std::string error_message;   // on failure, for the client
    std::string log_reason;      // on failure, for the log only
  };

  // channel_binding: the tls-server-end-point data when the client connected over TLS (SCRAM
  // then offers SCRAM-SHA-256-PLUS).
  client_authenticator(auth_method method, const user_config* user, std::string username,
                       std::optional<std::string> channel_binding = std::nullopt);

  [[nodiscard]] step start();
  [[nodiscard]] step on_message(char type, std::string_view body);
  // After a successful SCRAM login: the keys the client proved (see protocol::scram_keys).
  [[nodiscard]] std::optional<protocol::scram_keys> proven_keys() const {
    return scram_ ? scram_->proven_keys() : std::nullopt;
  }

 private:
  enum class exchange { none, md5, scram_first, scram_final };
  step fail_password(std::string log_reason);
  step fail_protocol(std::string message);

  auth_method method_;
  const user_config* user_;
  std::string username_;
  exchange exchange_ = exchange::none;
  std::string md5_salt_;
  std::string md5_secret_;
  std::unique_ptr<protocol::scram_server> scram_;
  std::optional<std::string> channel_binding_;
  std::optional<std::string> deferred_failure_;  // unknown user or unusable secret: fail at the end
};

}  // namespace meridian::proxy
