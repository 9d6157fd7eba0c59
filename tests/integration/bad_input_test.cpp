// Hostile and broken input: each case gets the right error or a close, and the proxy keeps
// serving everyone else — checked by a pgbench run going on at the same time.
#include <catch2/catch.hpp>

#include <future>
#include <memory>
#include <vector>

#include "protocol/codec.hpp"
#include "protocol/frontend.hpp"
#include "protocol/startup.hpp"
#include "support.hpp"

using namespace meridian::testing;
namespace pr = meridian::protocol;
using namespace std::chrono_literals;

namespace {

std::string startup_packet(std::int32_t version = 196608, const std::string& user = "app") {
  pr::startup_message m;
  m.protocol_version = version;
  m.parameters = {{"user", user}, {"database", "app"}};
  std::string out;
  pr::serialize(m, out);
  return out;
}

std::string header(char type, std::int32_t length) {
  std::string s(1, type);
  s.append(4, '\0');
  pr::put_i32(s.data() + 1, length);
  return s;
}

std::string length_prefix(std::int32_t length) {
  std::string s(4, '\0');
  pr::put_i32(s.data(), length);
  return s;
}

// Expects an ErrorResponse with `code`, then the connection closed.
void expect_error_and_close(raw_client& c, const std::string& code) {
  auto m = c.message();
  REQUIRE(m);
  CHECK(m->first == 'E');
  CHECK(error_code_of(m->second) == code);
  CHECK(c.closed_by_server());
}

// Expects the connection closed with nothing said, as PostgreSQL closes it after an invalid
// startup-packet length (it only logs).
void expect_silent_close(raw_client& c) {
  CHECK(c.receive(1).empty());
  CHECK(c.closed_by_server());
}

}  // namespace

TEST_CASE("malformed start-up and messages get what PostgreSQL answers while others keep working", "[integration][bad-input]") {
  const int port = meridian::testing::sandbox::meridian_port(0);
  // Load in the background for the whole battery.
  auto load = std::async(std::launch::async, [] {
    return run_command("PGPASSWORD=app-secret /usr/lib/postgresql/15/bin/pgbench -n -S -c 8 -j 2 -T 6 -h 127.0.0.1 -p " +
                       std::to_string(sandbox::meridian_port(0)) + " -U app app");
  });

  // 1,000 connections that never finish start-up (half of them sent part of a packet), held
  // open through the whole battery: the start-up timeout closes every one, and nobody else
  // notices.
  raise_descriptor_limit(4096);
  std::vector<std::unique_ptr<raw_client>> stalled;
  for (int i = 0; i < 1000; ++i) {
    stalled.push_back(std::make_unique<raw_client>(port));
    REQUIRE(stalled.back()->connected());
    if (i % 2 == 1) REQUIRE(stalled.back()->send(startup_packet().substr(0, static_cast<std::size_t>(1 + i % 7))));
  }

  SECTION("battery") {
    {
      INFO("startup packet longer than 10000 bytes");
      raw_client c(port);
      c.send(length_prefix(100000) + std::string(100, 'x'));
      expect_silent_close(c);
    }
    {
      INFO("startup packet length smaller than its header");
      raw_client c(port);
      c.send(length_prefix(3) + "abcd");
      expect_silent_close(c);
    }
    {
      INFO("negative startup length");
      raw_client c(port);
      c.send(length_prefix(-1));
      expect_silent_close(c);
    }
    {
      INFO("Terminate before the startup packet (node-postgres' connect() then end())");
      raw_client c(port);
      c.send(header('X', 4) + startup_packet());
      expect_silent_close(c);
    }
    {
      INFO("protocol 4.0");
      raw_client c(port);
      c.send(startup_packet(4 << 16));
      expect_error_and_close(c, "0A000");
    }
    {
      INFO("parameters not terminated");
      raw_client c(port);
      std::string body = length_prefix(196608) + std::string("user\0app", 8);
      c.send(length_prefix(static_cast<std::int32_t>(body.size() + 4)) + body);
      expect_error_and_close(c, "08P01");
    }
    {
      INFO("no user");
      raw_client c(port);
      std::string body = length_prefix(196608) + std::string("database\0app\0\0", 14);
      c.send(length_prefix(static_cast<std::int32_t>(body.size() + 4)) + body);
      expect_error_and_close(c, "08P01");
    }
    {
      INFO("GSSENCRequest is declined, then start-up proceeds in plaintext (TLS is allowed, not required)");
      raw_client c(port);
      std::string gss;
      pr::serialize_gssenc_request(gss);
      c.send(gss);
      CHECK(c.receive(1) == "N");
      CHECK(c.login().empty());
    }
    {
      INFO("SSLRequest is accepted; a client that then speaks plaintext fails the handshake and is closed");
      raw_client c(port);
      std::string ssl;
      pr::serialize_ssl_request(ssl);
      c.send(ssl);
      CHECK(c.receive(1) == "S");
      pr::startup_message sm;
      sm.parameters = {{"user", "app"}, {"database", "app"}};
      std::string startup;
      pr::serialize(sm, startup);
      c.send(startup);
      CHECK(c.closed_by_server());
    }
    {
      INFO("SSLRequest after start-up is a protocol violation");
      raw_client c(port);
      REQUIRE(c.login().empty());
      std::string ssl;
      pr::serialize_ssl_request(ssl);
      c.send(ssl);
      expect_error_and_close(c, "08P01");
    }
    {
      INFO("data pipelined after SSLRequest is refused (CVE-2021-23222)");
      raw_client c(port);
      std::string ssl;
      pr::serialize_ssl_request(ssl);
      c.send(ssl + startup_packet());
      expect_error_and_close(c, "08P01");
    }
    {
      INFO("start-up packet split byte by byte");
      raw_client c(port);
      auto packet = startup_packet();
      for (char b : packet) REQUIRE(c.send(std::string(1, b)));
      // login() sends the packet again; instead read the auth request directly.
      auto m = c.message();
      REQUIRE(m);
      CHECK(m->first == 'R');
    }
    {
      INFO("client disconnects mid start-up");
      raw_client c(port);
      c.send(startup_packet().substr(0, 7));
    }
    {
      INFO("message length smaller than its header after login");
      raw_client c(port);
      REQUIRE(c.login().empty());
      c.send(header('Q', 2));
      expect_error_and_close(c, "08P01");
    }
    {
      INFO("unknown message type");
      raw_client c(port);
      REQUIRE(c.login().empty());
      c.send(header('z', 4));
      expect_error_and_close(c, "08P01");
    }
    {
      INFO("oversized message is refused from its header alone");
      raw_client c(port);
      REQUIRE(c.login().empty());
      c.send(header('Q', 200 * 1024 * 1024));
      expect_error_and_close(c, "08P01");
    }
    {
      INFO("malformed Bind");
      raw_client c(port);
      REQUIRE(c.login().empty());
      std::string body("\0\0\0\x02\0\x02\0\0", 8);  // format code 2
      c.send(header('B', static_cast<std::int32_t>(body.size() + 4)) + body);
      expect_error_and_close(c, "08P01");
    }
    {
      INFO("Query without its terminator");
      raw_client c(port);
      REQUIRE(c.login().empty());
      c.send(header('Q', 12) + "SELECT 1");
      expect_error_and_close(c, "08P01");
    }
    {
      INFO("truncated message, then the client goes away");
      raw_client c(port);
      REQUIRE(c.login().empty());
      c.send(header('Q', 100) + "SELECT");
    }
    {
      INFO("a correct query on a raw connection still works");
      raw_client c(port);
      REQUIRE(c.login().empty());
      std::string q;
      pr::fe::serialize(pr::fe::query{"SELECT 1"}, q);
      c.send(q);
      std::string types;
      while (auto m = c.message()) {
        types.push_back(m->first);
        if (m->first == 'Z') break;
      }
      CHECK(types == "TDCZ");
    }
  }

  auto result = load.get();
  INFO(result.output);
  CHECK(result.exit_code == 0);
  CHECK_THAT(result.output, Catch::Contains("number of failed transactions: 0"));
  // The sandbox's start-up timeout is 10 s; they were opened before the battery.
  std::size_t closed = 0;
  for (auto& c : stalled) if (c->closed_by_server(15s)) ++closed;
  CHECK(closed == stalled.size());
  pg_connection after(sandbox::dsn(0));
  REQUIRE(after.ok());
  CHECK(after.scalar("SELECT 'alive'") == "alive");
}
