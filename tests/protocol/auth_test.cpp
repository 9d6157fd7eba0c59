// SCRAM-SHA-256 against RFC 7677's worked example, and PostgreSQL's md5 scheme.
#include <catch2/catch.hpp>

#include "protocol/md5.hpp"
#include "protocol/scram.hpp"

using namespace meridian::protocol;

namespace {
// RFC 7677, section 3.
constexpr const char* rfc_client_nonce = "rOprNGfwEbeRWgbNEkqO";
constexpr const char* rfc_server_nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr const char* rfc_client_first = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
constexpr const char* rfc_server_first =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr const char* rfc_client_final =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr const char* rfc_server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

scram_verifier rfc_verifier() {
  return scram_verifier::from_password("pencil", *base64_decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096);
}
}  // namespace

TEST_CASE("SCRAM client side matches RFC 7677", "[protocol][scram]") {
  scram_client client("pencil", "user", rfc_client_nonce);
  CHECK(client.client_first() == rfc_client_first);
  auto final_msg = client.server_first(rfc_server_first);
  REQUIRE(final_msg);
  CHECK(*final_msg == rfc_client_final);
  CHECK(client.server_final(rfc_server_final));
  CHECK_FALSE(client.server_final("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
}

TEST_CASE("SCRAM client refuses a server asking for more than a million iterations", "[protocol][scram]") {
  // The SCRAM fuzzer's find: 9,475,917 iterations held the thread for seconds.
  const std::string first = std::string(rfc_server_first).substr(0, std::string(rfc_server_first).rfind("i=") + 2);
  scram_client over("pencil", "user", rfc_client_nonce);
  CHECK(over.client_first() == rfc_client_first);
  CHECK_FALSE(over.server_first(first + "9475917"));
  scram_client at_limit("pencil", "user", rfc_client_nonce);
  CHECK(at_limit.client_first() == rfc_client_first);
  CHECK(at_limit.server_first(first + "1000000"));
}

TEST_CASE("SCRAM server side matches RFC 7677", "[protocol][scram]") {
  scram_server server(rfc_verifier(), rfc_server_nonce);
  auto first = server.client_first(rfc_client_first);
  REQUIRE(first);
  CHECK(*first == rfc_server_first);
  auto final_msg = server.client_final(rfc_client_final);
  REQUIRE(final_msg);
  CHECK(*final_msg == rfc_server_final);
}

TEST_CASE("SCRAM server refuses a wrong password and malformed messages", "[protocol][scram]") {
  SECTION("wrong password") {
    scram_server server(rfc_verifier());
    scram_client client("not-pencil");
    auto first = server.client_first(client.client_first());
    REQUIRE(first);
    auto final_msg = client.server_first(*first);
    REQUIRE(final_msg);
    auto r = server.client_final(*final_msg);
    REQUIRE_FALSE(r);
    CHECK(r.error() == scram_failure::wrong_proof);
  }
  SECTION("right password with a random nonce") {
    scram_server server(rfc_verifier());
    scram_client client("pencil");
    auto first = server.client_first(client.client_first());
    REQUIRE(first);
    auto final_msg = client.server_first(*first);
    REQUIRE(final_msg);
    auto r = server.client_final(*final_msg);
    REQUIRE(r);
    CHECK(client.server_final(*r));
  }
  SECTION("malformed client-first messages") {
    for (const char* m : {"", "n,", "x,,n=,r=abc", "n,a=admin,n=,r=abc",
                          "n,,r=abc", "n,,n=,r=", "n,,n=,r=a,b", "n,,m=ext,n=,r=abc"}) {
      INFO(m);
      scram_server server(rfc_verifier());
      auto r = server.client_first(m);
      REQUIRE_FALSE(r);
      CHECK(r.error() == scram_failure::malformed);
    }
  }
  SECTION("client-final with a different nonce or binding") {
    scram_server server(rfc_verifier(), rfc_server_nonce);
    REQUIRE(server.client_first(rfc_client_first));
    std::string other_nonce = rfc_client_final;
    other_nonce[12] = other_nonce[12] == 'x' ? 'y' : 'x';
    CHECK(server.client_final(other_nonce).error() == scram_failure::malformed);
    std::string other_binding = rfc_client_final;
    other_binding.replace(2, 4, "eSws");  // base64("y,,")
    CHECK(server.client_final(other_binding).error() == scram_failure::malformed);
    CHECK(server.client_final("c=biws").error() == scram_failure::malformed);
  }
}

TEST_CASE("SCRAM verifiers parse and print as pg_authid stores them", "[protocol][scram]") {
  auto v = rfc_verifier();
  auto text = v.to_string();
  CHECK(text.rfind("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$", 0) == 0);
  auto back = scram_verifier::parse(text);
  REQUIRE(back);
  CHECK(back->iterations == 4096);
  CHECK(back->salt == v.salt);
  CHECK(back->stored_key == v.stored_key);
  CHECK(back->server_key == v.server_key);
  for (const char* bad : {"", "SCRAM-SHA-256$", "SCRAM-SHA-256$0:c2FsdA==$a:b", "SCRAM-SHA-256$x:c2FsdA==$a:b",
                          "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA", "md5abc", "SCRAM-SHA-1$4096:c2FsdA==$a:b"}) {
    INFO(bad);
    CHECK_FALSE(scram_verifier::parse(bad));
  }
}

TEST_CASE("base64", "[protocol][scram]") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(*base64_decode("Zg==") == "f");
  CHECK(*base64_decode("Zm8=") == "fo");
  CHECK(*base64_decode("Zm9v") == "foo");
  CHECK_FALSE(base64_decode("Zm9"));
  CHECK_FALSE(base64_decode("Zm9v!A=="));
}

TEST_CASE("md5 password scheme", "[protocol][md5]") {
  CHECK(md5_stored_secret("postgres", "postgres") == "md53175bce1d3201d16594cebf9d7eb3f9d");
  const std::string salt("\x01\x02\x03\x04", 4);
  auto response = md5_response("md53175bce1d3201d16594cebf9d7eb3f9d", salt);
  CHECK(response == "md568be9ed08db75f318087ab337aaea044");  // computed independently with hashlib
  CHECK(md5_verify("md53175bce1d3201d16594cebf9d7eb3f9d", salt, response));
  CHECK_FALSE(md5_verify("md53175bce1d3201d16594cebf9d7eb3f9d", "abcd", response));
  CHECK_FALSE(md5_verify("plaintext", salt, response));
  CHECK(is_md5_secret("md53175bce1d3201d16594cebf9d7eb3f9d"));
  CHECK_FALSE(is_md5_secret("md53175BCE1d3201d16594cebf9d7eb3f9d"));
  CHECK_FALSE(is_md5_secret("md5short"));
}

TEST_CASE("SCRAM with tls-server-end-point channel binding", "[protocol][scram]") {
  const std::string cert_hash(32, '\x5a');
  auto run = [](scram_server& server, scram_client& client, bool plus) -> tl::expected<std::string, scram_failure> {
    auto first = server.client_first(client.client_first(), plus);
    if (!first) return tl::unexpected(first.error());
    auto final_msg = client.server_first(*first);
    REQUIRE(final_msg);
    return server.client_final(*final_msg);
  };
  SECTION("a bound exchange succeeds and the client verifies the server") {
    scram_server server(rfc_verifier(), {}, cert_hash);
    scram_client client("pencil", {}, {}, cert_hash);
    auto r = run(server, client, true);
    REQUIRE(r);
    CHECK(client.server_final(*r));
  }
  SECTION("binding data of another certificate (a man in the middle) fails") {
    scram_server server(rfc_verifier(), {}, cert_hash);
    scram_client client("pencil", {}, {}, std::string(32, '\x01'));
    auto r = run(server, client, true);
    REQUIRE_FALSE(r);
    CHECK(r.error() == scram_failure::channel_binding);
  }
  SECTION("a client without binding support still logs in over TLS") {
    scram_server server(rfc_verifier(), {}, cert_hash);
    scram_client client("pencil");
    CHECK(run(server, client, false));
  }
  SECTION("refusals") {
    struct row {
      bool tls;
      const char* first;
      bool plus;
      scram_failure expected;
    };
    const row rows[] = {
        {true, "y,,n=,r=abc", false, scram_failure::channel_binding},   // binding offered, client saw none
        {false, "p=tls-server-end-point,,n=,r=abc", true, scram_failure::channel_binding},  // no TLS
        {true, "p=tls-unique,,n=,r=abc", true, scram_failure::channel_binding},  // unsupported type
        {true, "p=tls-server-end-point,,n=,r=abc", false, scram_failure::channel_binding},  // bound, plain mechanism
        {true, "n,,n=,r=abc", true, scram_failure::malformed},  // PLUS without binding
    };
    for (const auto& r : rows) {
      INFO(r.first << (r.tls ? " over TLS" : " without TLS") << (r.plus ? ", PLUS" : ""));
      scram_server server(rfc_verifier(), {}, r.tls ? std::optional<std::string>(cert_hash) : std::nullopt);
      auto got = server.client_first(r.first, r.plus);
      REQUIRE_FALSE(got);
      CHECK(got.error() == r.expected);
    }
    // Without TLS, a "y" client is fine: the server really offers no binding.
    scram_server plain(rfc_verifier());
    CHECK(plain.client_first("y,,n=,r=abc"));
  }
}

TEST_CASE("keys a client proved log in to another server holding the same verifier, and only there",
          "[protocol][scram]") {
  // The client proves "pencil" to the first server; no keys before that, none after a wrong proof.
  auto exchange = [](scram_server& server, const std::string& password) {
    scram_client client(password);
    auto first = server.client_first(client.client_first());
    REQUIRE(first);
    auto final_msg = client.server_first(*first);
    REQUIRE(final_msg);
    return server.client_final(*final_msg).has_value();
  };
  scram_server wrong(rfc_verifier());
  CHECK_FALSE(exchange(wrong, "crayon"));
  CHECK_FALSE(wrong.proven_keys());
  scram_server first_server(rfc_verifier());
  CHECK_FALSE(first_server.proven_keys());
  REQUIRE(exchange(first_server, "pencil"));
  auto keys = first_server.proven_keys();
  REQUIRE(keys);

  // A second server with the same verifier (another nonce): the keys suffice, both ways.
  scram_server second_server(rfc_verifier());
  scram_client from_keys(*keys);
  auto first = second_server.client_first(from_keys.client_first());
  REQUIRE(first);
  auto final_msg = from_keys.server_first(*first);
  REQUIRE(final_msg);
  auto server_final = second_server.client_final(*final_msg);
  REQUIRE(server_final);
  CHECK(from_keys.server_final(*server_final));

  // A server whose verifier has another salt (the password set again) refuses them.
  scram_server reset(scram_verifier::from_password("pencil", "another salt", 4096));
  scram_client stale(*keys);
  auto reset_first = reset.client_first(stale.client_first());
  REQUIRE(reset_first);
  auto stale_final = stale.server_first(*reset_first);
  REQUIRE(stale_final);
  CHECK_FALSE(reset.client_final(*stale_final));
}
