#include <catch2/catch.hpp>

#include "protocol/codec.hpp"
#include "protocol/framing.hpp"
#include "protocol/frontend.hpp"
#include "protocol/startup.hpp"

using namespace meridian::protocol;

TEST_CASE("a stream of messages frames identically however it is split", "[protocol][framing]") {
  std::string stream;
  fe::serialize(fe::query{"SELECT 1"}, stream);
  fe::serialize(fe::parse{"s", "SELECT $1", {23}}, stream);
  fe::serialize_empty(frontend_type::sync, stream);
  fe::serialize(fe::copy_data{std::string(300, 'x')}, stream);

  std::vector<char> expected_types{'Q', 'P', 'S', 'd'};
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    // Feed the first `split` bytes, then the rest, like two reads from a socket.
    std::string buffer;
    std::vector<char> types;
    std::size_t fed = 0;
    auto drain = [&] {
      for (;;) {
        auto r = next_frame(buffer, 1024);
        REQUIRE(r.status != frame_status::invalid);
        if (r.status == frame_status::need_more) break;
        types.push_back(r.msg.type);
        buffer.erase(0, r.msg.wire_size);
      }
    };
    buffer.append(stream, 0, split);
    fed = split;
    drain();
    buffer.append(stream, fed);
    drain();
    CHECK(types == expected_types);
    CHECK(buffer.empty());
  }
}

TEST_CASE("byte-by-byte feeding reports how much a message needs", "[protocol][framing]") {
  std::string wire;
  fe::serialize(fe::query{"SELECT 42"}, wire);
  for (std::size_t n = 0; n < wire.size(); ++n) {
    auto r = next_frame(std::string_view(wire).substr(0, n), 1024);
    CHECK(r.status == frame_status::need_more);
    if (n >= typed_header_size) CHECK(r.needed == wire.size());
  }
  CHECK(next_frame(wire, 1024).status == frame_status::complete);
}

TEST_CASE("bad lengths are rejected before anything is allocated", "[protocol][framing]") {
  struct row {
    std::string bytes;
    std::size_t limit;
  };
  auto header = [](char type, std::int32_t len) {
    std::string s(1, type);
    s.append(4, '\0');
    put_i32(s.data() + 1, len);
    return s;
  };
  const std::vector<row> rows{
      {header('Q', 3), 1024},           // shorter than its own length field
      {header('Q', -1), 1024},          // negative
      {header('Q', 0x7fffffff), 1024},  // 2 GiB
      {header('Q', 2000), 1024},        // over the configured limit
  };
  for (const auto& r : rows) CHECK(next_frame(r.bytes, r.limit).status == frame_status::invalid);
  CHECK(next_frame(header('Q', 1000), 1024).status == frame_status::need_more);
}

TEST_CASE("startup packets", "[protocol][startup]") {
  SECTION("a StartupMessage round-trips") {
    startup_message m;
    m.parameters = {{"user", "app"}, {"database", "db"}, {"application_name", "psql"}};
    std::string wire;
    serialize(m, wire);
    auto f = next_startup_frame(wire, 10000);
    REQUIRE(f.status == frame_status::complete);
    auto p = parse_startup_packet(f.msg.body);
    REQUIRE(p);
    CHECK(p->kind == startup_kind::startup);
    CHECK(p->startup == m);
    CHECK(p->startup.get("database") == "db");
  }
  SECTION("SSLRequest, GSSENCRequest and CancelRequest") {
    std::string wire;
    serialize_ssl_request(wire);
    CHECK(parse_startup_packet(next_startup_frame(wire, 100).msg.body)->kind == startup_kind::ssl_request);
    wire.clear();
    serialize_gssenc_request(wire);
    CHECK(parse_startup_packet(next_startup_frame(wire, 100).msg.body)->kind == startup_kind::gssenc_request);
    wire.clear();
    serialize(cancel_request{77, -5}, wire);
    auto p = parse_startup_packet(next_startup_frame(wire, 100).msg.body);
    REQUIRE(p);
    CHECK(p->kind == startup_kind::cancel_request);
    CHECK(p->cancel == cancel_request{77, -5});
  }
  SECTION("malformed packets are rejected") {
    auto body = [](std::int32_t code, std::string rest) {
      std::string s(4, '\0');
      put_i32(s.data(), code);
      return s + rest;
    };
    const std::vector<std::string> bad{
        std::string("\0\0", 2),                                          // too short for a code
        body(196608, std::string("user\0app", 8)),                       // value not terminated
        body(196608, std::string("user\0app\0", 9)),                     // list not terminated
        body(196608, std::string("database\0x\0\0", 12)),                // no user
        body(196608, std::string("user\0app\0\0junk", 14)),              // bytes after terminator
        body(2 << 16, std::string("user\0app\0\0", 10)),                 // protocol 2.0
        body(4 << 16, std::string("user\0app\0\0", 10)),                 // protocol 4.0
        body(cancel_request_code, std::string("\0\0\0\1", 4)),           // cancel missing secret
        body(ssl_request_code, std::string("x", 1)),                     // SSLRequest with a body
        body(1234, ""),                                                  // unknown code
    };
    for (const auto& b : bad) {
      INFO("body of " << b.size() << " bytes");
      CHECK_FALSE(parse_startup_packet(b).has_value());
    }
  }
  SECTION("startup framing limits") {
    std::string wire(4, '\0');
    put_i32(wire.data(), 4);
    CHECK(next_startup_frame(wire, 10000).status == frame_status::invalid);
    put_i32(wire.data(), 20000);
    CHECK(next_startup_frame(wire, 10000).status == frame_status::invalid);
    put_i32(wire.data(), -8);
    CHECK(next_startup_frame(wire, 10000).status == frame_status::invalid);
  }
}
