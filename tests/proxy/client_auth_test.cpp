// The client-facing authentication exchange, driven by Meridian's own SCRAM client and md5
// functions as a driver would drive it.
#include <catch2/catch.hpp>

#include "protocol/backend.hpp"
#include "protocol/framing.hpp"
#include "protocol/frontend.hpp"
#include "protocol/md5.hpp"
#include "protocol/scram.hpp"
#include "proxy/client_auth.hpp"

using namespace meridian;
using namespace meridian::proxy;
namespace pr = meridian::protocol;

namespace {
using state = client_authenticator::state;

pr::be::authentication last_auth(const std::string& wire) {
  std::string_view rest = wire;
  pr::be::authentication last;
  while (!rest.empty()) {
    auto f = pr::next_frame(rest, 4096);
    REQUIRE(f.status == pr::frame_status::complete);
    last = *pr::be::parse_authentication(f.msg.body);
    rest.remove_prefix(f.msg.wire_size);
  }
  return last;
}

// Runs the exchange as a client knowing `password`; returns the final step.
client_authenticator::step login(auth_method method, const user_config* user, const std::string& name,
                                 const std::string& password) {
  client_authenticator auth(method, user, name);
  auto step = auth.start();
  if (step.outcome != state::in_progress) return step;
  auto challenge = last_auth(step.to_client);
  std::string msg;
  if (challenge.code == pr::auth_code::md5_password) {
    pr::fe::serialize(pr::fe::password_message{pr::md5_response(pr::md5_stored_secret(password, name), challenge.payload)}, msg);
    auto f = pr::next_frame(msg, 4096);
    return auth.on_message(f.msg.type, f.msg.body);
  }
  REQUIRE(challenge.code == pr::auth_code::sasl);
  pr::scram_client client(password);
  pr::fe::serialize(pr::fe::sasl_initial_response{"SCRAM-SHA-256", client.client_first()}, msg);
  auto f = pr::next_frame(msg, 4096);
  step = auth.on_message(f.msg.type, f.msg.body);
  if (step.outcome != state::in_progress) return step;
  auto server_first = last_auth(step.to_client);
  REQUIRE(server_first.code == pr::auth_code::sasl_continue);
  auto final_msg = client.server_first(server_first.payload);
  REQUIRE(final_msg);
  msg.clear();
  pr::fe::serialize(pr::fe::sasl_response{*final_msg}, msg);
  f = pr::next_frame(msg, 4096);
  step = auth.on_message(f.msg.type, f.msg.body);
  if (step.outcome == state::succeeded) {
    // The client checks the server's signature in AuthenticationSASLFinal.
    std::string_view rest = step.to_client;
    auto first = pr::next_frame(rest, 4096);
    auto fin = pr::be::parse_authentication(first.msg.body);
    REQUIRE(fin->code == pr::auth_code::sasl_final);
    CHECK(client.server_final(fin->payload));
  }
  return step;
}
}  // namespace

TEST_CASE("client authentication outcomes", "[proxy][auth]") {
  const auto verifier = pr::scram_verifier::from_password("s3cret", "0123456789abcdef", 4096).to_string();
  const user_config scram_user{"app", verifier, std::nullopt, std::nullopt, std::nullopt, std::nullopt, false};
  const user_config md5_user{"app", pr::md5_stored_secret("s3cret", "app"), std::nullopt, std::nullopt, std::nullopt, std::nullopt, false};
  const user_config plain_user{"app", "s3cret", std::nullopt, std::nullopt, std::nullopt, std::nullopt, false};

  struct row {
    const char* what;
    auth_method method;
    const user_config* user;
    std::string password;
    state expected;
    std::string sqlstate;
  };
  const std::vector<row> rows{
      {"scram verifier, right password", auth_method::scram_sha_256, &scram_user, "s3cret", state::succeeded, ""},
      {"scram verifier, wrong password", auth_method::scram_sha_256, &scram_user, "nope", state::failed, "28P01"},
      {"plain secret over scram", auth_method::scram_sha_256, &plain_user, "s3cret", state::succeeded, ""},
      {"plain secret over scram, wrong", auth_method::scram_sha_256, &plain_user, "nope", state::failed, "28P01"},
      {"md5 hash over md5", auth_method::md5, &md5_user, "s3cret", state::succeeded, ""},
      {"md5 hash over md5, wrong", auth_method::md5, &md5_user, "nope", state::failed, "28P01"},
      {"plain secret over md5", auth_method::md5, &plain_user, "s3cret", state::succeeded, ""},
      {"scram verifier with md5 configured uses scram", auth_method::md5, &scram_user, "s3cret", state::succeeded, ""},
      {"md5 hash cannot do scram", auth_method::scram_sha_256, &md5_user, "s3cret", state::failed, "28P01"},
      {"unknown user, scram", auth_method::scram_sha_256, nullptr, "s3cret", state::failed, "28P01"},
      {"unknown user, md5", auth_method::md5, nullptr, "s3cret", state::failed, "28P01"},
      {"trust", auth_method::trust, &plain_user, "", state::succeeded, ""},
      {"trust, unknown user", auth_method::trust, nullptr, "", state::failed, "28000"},
  };
  for (const auto& r : rows) {
    INFO(r.what);
    auto step = login(r.method, r.user, "app", r.password);
    CHECK(step.outcome == r.expected);
    CHECK(step.sqlstate == r.sqlstate);
    if (r.expected == state::failed && r.sqlstate == "28P01")
      CHECK(step.error_message == "password authentication failed for user \"app\"");
  }
}

TEST_CASE("malformed authentication messages are protocol violations", "[proxy][auth]") {
  const user_config user{"app", "s3cret", std::nullopt, std::nullopt, std::nullopt, std::nullopt, false};
  client_authenticator auth(auth_method::scram_sha_256, &user, "app");
  (void)auth.start();
  auto step = auth.on_message('p', std::string("SCRAM-SHA-1\0\0\0\0\0", 16));
  CHECK(step.outcome == state::failed);
  CHECK(step.sqlstate == "08P01");

  client_authenticator other(auth_method::md5, &user, "app");
  (void)other.start();
  CHECK(other.on_message('Q', "SELECT 1").sqlstate == "08P01");
}
