#include "proxy/client_auth.hpp"

#include <openssl/rand.h>

#include "protocol/backend.hpp"
#include "protocol/error.hpp"
#include "protocol/frontend.hpp"
#include "protocol/md5.hpp"

namespace meridian::proxy {

namespace pr = meridian::protocol;

namespace {
constexpr int scram_iterations = 4096;

std::string random_bytes(std::size_t n) {
  std::string s(n, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(s.data()), static_cast<int>(n));
  return s;
}

std::string auth_message(pr::auth_code code, std::string_view payload = {}) {
  std::string out;
  pr::be::serialize(pr::be::authentication{code, payload}, out);
  return out;
}
}  // namespace

client_authenticator::client_authenticator(auth_method method, const user_config* user, std::string username,
                                           std::optional<std::string> channel_binding)
    : method_(method), user_(user), username_(std::move(username)), channel_binding_(std::move(channel_binding)) {}

client_authenticator::step client_authenticator::fail_password(std::string log_reason) {
  step s;
  s.outcome = state::failed;
  s.sqlstate = std::string(pr::sqlstate::invalid_password);
  s.error_message = "password authentication failed for user \"" + username_ + "\"";
  s.log_reason = std::move(log_reason);
  return s;
}

client_authenticator::step client_authenticator::fail_protocol(std::string message) {
  step s;
  s.outcome = state::failed;
  s.sqlstate = std::string(pr::sqlstate::protocol_violation);
  s.error_message = message;
  s.log_reason = std::move(message);
  return s;
}

client_authenticator::step client_authenticator::start() {
  step s;
  if (method_ == auth_method::trust) {
    if (!user_) {
      s.outcome = state::failed;
      s.sqlstate = std::string(pr::sqlstate::invalid_authorization);
      s.error_message = "no such user \"" + username_ + "\" is configured in Meridian";
      s.log_reason = s.error_message;
      return s;
    }
    s.outcome = state::succeeded;
    s.to_client = auth_message(pr::auth_code::ok);
    return s;
  }

  std::string secret;
  if (!user_) {
    deferred_failure_ = "user does not exist";
  } else {
    secret = user_->secret;
  }
  auto verifier = pr::scram_verifier::parse(secret);
  const bool md5_secret = pr::is_md5_secret(secret);
  const bool plain_secret = !verifier && !md5_secret;

  if (method_ == auth_method::md5 && !verifier) {
    exchange_ = exchange::md5;
    md5_salt_ = random_bytes(4);
    md5_secret_ = plain_secret ? pr::md5_stored_secret(secret, username_) : secret;
    if (!user_) md5_secret_ = pr::md5_stored_secret(random_bytes(16), username_);
    s.to_client = auth_message(pr::auth_code::md5_password, md5_salt_);
    return s;
  }

  if (!verifier) {
    if (md5_secret) {
      deferred_failure_ = "user has an md5 secret, which cannot be used for SCRAM authentication";
      verifier = pr::scram_verifier::from_password(random_bytes(16), random_bytes(16), scram_iterations);
    } else {
      // Plain text (or no user): derive a verifier. Unknown users get a random one.
      verifier = pr::scram_verifier::from_password(user_ ? secret : random_bytes(16), random_bytes(16),
                                                   scram_iterations);
    }
  }
  scram_ = std::make_unique<pr::scram_server>(std::move(*verifier), std::string(), channel_binding_);
  exchange_ = exchange::scram_first;
  std::string out;
  if (channel_binding_) {
    pr::be::serialize_auth_sasl({"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"}, out);
  } else {
    pr::be::serialize_auth_sasl({"SCRAM-SHA-256"}, out);
  }
  s.to_client = std::move(out);
  return s;
}

client_authenticator::step client_authenticator::on_message(char type, std::string_view body) {
  if (type != pr::frontend_type::password) return fail_protocol("expected a password response, got message type " + std::string(1, type));
  step s;
  switch (exchange_) {
    case exchange::md5: {
      auto m = pr::fe::parse_password_message(body);
      if (!m) return fail_protocol(m.error().message);
      if (!pr::md5_verify(md5_secret_, md5_salt_, m->password) || deferred_failure_)
        return fail_password(deferred_failure_.value_or("md5 response did not match"));
      s.outcome = state::succeeded;
      s.to_client = auth_message(pr::auth_code::ok);
      return s;
    }
    case exchange::scram_first: {
      auto m = pr::fe::parse_sasl_initial_response(body);
      if (!m) return fail_protocol(m.error().message);
      const bool plus = m->mechanism == "SCRAM-SHA-256-PLUS";
      if (m->mechanism != "SCRAM-SHA-256" && !(plus && channel_binding_))
        return fail_protocol("client selected an invalid SASL authentication mechanism");
      if (!m->data) return fail_protocol("malformed SCRAM message (no initial response)");
      auto r = scram_->client_first(*m->data, plus);
      if (!r && r.error() == pr::scram_failure::channel_binding)
        return fail_protocol("SCRAM channel binding negotiation error: the client's binding does not match what this "
                             "connection offers");
      if (!r) return fail_protocol("malformed SCRAM message");
      exchange_ = exchange::scram_final;
      s.to_client = auth_message(pr::auth_code::sasl_continue, *r);
      return s;
    }
    case exchange::scram_final: {
      auto r = scram_->client_final(body);
      if (!r) {
        if (r.error() == pr::scram_failure::malformed) return fail_protocol("malformed SCRAM message");
        if (r.error() == pr::scram_failure::channel_binding)
          return fail_protocol("SCRAM channel binding check failed (the client saw another server certificate)");
        return fail_password(deferred_failure_.value_or("SCRAM proof did not match"));
      }
      if (deferred_failure_) return fail_password(*deferred_failure_);
      s.outcome = state::succeeded;
      s.to_client = auth_message(pr::auth_code::sasl_final, *r);
      s.to_client += auth_message(pr::auth_code::ok);
      return s;
    }
    case exchange::none: break;
  }
  return fail_protocol("unexpected authentication message");
}

}  // namespace meridian::proxy
