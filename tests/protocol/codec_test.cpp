// Every frontend and backend message: serialize → frame → parse gives back the same value, and
// every truncation of the body is rejected rather than misread.
#include <catch2/catch.hpp>

#include <functional>

#include "protocol/backend.hpp"
#include "protocol/framing.hpp"
#include "protocol/frontend.hpp"

using namespace meridian::protocol;

namespace {

template <class T, class Parse>
void check_round_trip(const T& value, Parse parse, bool truncations_fail = true) {
  std::string wire;
  serialize(value, wire);
  auto r = next_frame(wire, 1 << 20);
  REQUIRE(r.status == frame_status::complete);
  REQUIRE(r.msg.wire_size == wire.size());
  auto parsed = parse(r.msg.body);
  REQUIRE(parsed.has_value());
  CHECK(*parsed == value);
  if (!truncations_fail) return;
  for (std::size_t cut = 0; cut < r.msg.body.size(); ++cut) {
    INFO("body truncated to " << cut << " bytes");
    CHECK_FALSE(parse(r.msg.body.substr(0, cut)).has_value());
  }
}

}  // namespace

TEST_CASE("frontend messages round-trip and reject truncation", "[protocol][codec]") {
  using namespace meridian::protocol::fe;
  check_round_trip(query{"SELECT 1"}, parse_query);
  check_round_trip(parse{"s1", "SELECT $1::int + $2", {23, 0}}, parse_parse);
  check_round_trip(parse{"", "SELECT 1", {}}, parse_parse);
  {
    bind_parameters p{{1}, {std::string_view("\x00\x00\x00\x01", 4), std::nullopt}, {0, 1}};
    std::string tail;
    serialize_bind_parameters(p, tail);
    check_round_trip(bind{"portal", "stmt", tail}, parse_bind);
    auto back = parse_bind_parameters(tail);
    REQUIRE(back);
    CHECK(*back == p);
  }
  check_round_trip(describe{target_kind::statement, "s1"}, parse_describe);
  check_round_trip(describe{target_kind::portal, ""}, parse_describe);
  check_round_trip(execute{"", 0}, parse_execute);
  check_round_trip(execute{"p", 100}, parse_execute);
  check_round_trip(fe::close{target_kind::statement, "s1"}, parse_close);
  check_round_trip(fe::close{target_kind::portal, "p1"}, parse_close);
  check_round_trip(copy_fail{"aborted by user"}, parse_copy_fail);
  check_round_trip(function_call{1598, bind_parameters{{0}, {std::string_view("42")}, {0}}}, parse_function_call);
  check_round_trip(password_message{"md5abcdef"}, parse_password_message);
  check_round_trip(sasl_initial_response{"SCRAM-SHA-256", std::string_view("n,,n=,r=abc")}, parse_sasl_initial_response);
  check_round_trip(sasl_initial_response{"SCRAM-SHA-256", std::nullopt}, parse_sasl_initial_response);
  // CopyData and SASLResponse bodies are opaque: any length is valid.
  check_round_trip(copy_data{"1\tfoo\n"}, parse_copy_data, false);
  check_round_trip(sasl_response{"c=biws,r=x,p=y"}, parse_sasl_response, false);
}

TEST_CASE("empty frontend messages", "[protocol][codec]") {
  using namespace meridian::protocol::fe;
  for (char type : {frontend_type::sync, frontend_type::flush, frontend_type::terminate, frontend_type::copy_done}) {
    std::string wire;
    serialize_empty(type, wire);
    REQUIRE(wire.size() == 5);
    auto r = next_frame(wire, 1024);
    REQUIRE(r.status == frame_status::complete);
    CHECK(r.msg.type == type);
    CHECK(validate(type, r.msg.body).has_value());
    CHECK_FALSE(validate(type, "x").has_value());
  }
}

TEST_CASE("frontend validation rejects malformed bodies", "[protocol][codec]") {
  using namespace meridian::protocol::fe;
  struct row {
    char type;
    std::string body;
  };
  const std::vector<row> bad{
      {'Q', std::string("SELECT 1")},                         // no terminator
      {'Q', std::string("SELECT 1\0extra", 14)},              // bytes after terminator
      {'P', std::string("s\0SELECT 1\0\xff\xff", 13)},        // negative parameter count
      {'P', std::string("s\0SELECT 1\0\0\x02\0\0\0\x17", 17)},  // 2 types announced, 1 given
      {'B', std::string("\0\0\0\x02\0\x02\0\0", 8)},           // format code 2 is invalid
      {'B', std::string("\0\0\0\0\0\x01\xff\xff\xff\xfe\0\0", 12)},  // value length -2
      {'B', std::string("\0\0\0\x02\0\0\0\0\0\0\0\x01\0\0", 14)},    // 2 formats but 1 value
      {'D', std::string("X\0", 2)},                           // describe kind X
      {'C', std::string("S", 1)},                             // close without name
      {'E', std::string("\0\0\0", 3)},                        // execute row count truncated
      {'F', std::string("\0\0\0\x01", 4)},                    // function call truncated
      {'S', std::string("x", 1)},                             // Sync with a body
      {'z', std::string()},                                   // unknown type
      {'\0', std::string()},
  };
  for (const auto& r : bad) {
    INFO("type " << static_cast<int>(r.type) << " body size " << r.body.size());
    CHECK_FALSE(validate(r.type, r.body).has_value());
  }
}

TEST_CASE("backend messages round-trip and reject truncation", "[protocol][codec]") {
  using namespace meridian::protocol::be;
  check_round_trip(authentication{auth_code::ok, ""}, parse_authentication);
  check_round_trip(authentication{auth_code::md5_password, "abcd"}, parse_authentication);
  check_round_trip(backend_key_data{1234, -99}, parse_backend_key_data);
  check_round_trip(parameter_status{"TimeZone", "UTC"}, parse_parameter_status);
  check_round_trip(ready_for_query{tx_status::in_transaction}, parse_ready_for_query);
  check_round_trip(command_complete{"SELECT 1"}, parse_command_complete);
  check_round_trip(row_description{{{"a", 16384, 1, 23, 4, -1, 0}, {"b", 0, 0, 25, -1, -1, 1}}}, parse_row_description);
  check_round_trip(data_row{{std::string_view("1"), std::nullopt, std::string_view("")}}, parse_data_row);
  check_round_trip(parameter_description{{23, 25}}, parse_parameter_description);
  check_round_trip(notification{42, "chan", "payload"}, parse_notification);
  check_round_trip(function_call_response{std::string_view("7")}, parse_function_call_response);
  check_round_trip(function_call_response{std::nullopt}, parse_function_call_response);
  check_round_trip(negotiate_protocol_version{0, {"_pq_.x"}}, parse_negotiate_protocol_version);
  {
    error_fields e{{{'S', "ERROR"}, {'C', "42P01"}, {'M', "relation \"x\" does not exist"}}};
    std::string wire;
    serialize(backend_type::error_response, e, wire);
    auto r = next_frame(wire, 1024);
    REQUIRE(r.status == frame_status::complete);
    auto back = parse_error_fields(r.msg.body);
    REQUIRE(back);
    CHECK(*back == e);
    CHECK(back->get('C') == "42P01");
    for (std::size_t cut = 0; cut < r.msg.body.size(); ++cut) CHECK_FALSE(parse_error_fields(r.msg.body.substr(0, cut)));
  }
  for (char t : {backend_type::copy_in_response, backend_type::copy_out_response, backend_type::copy_both_response}) {
    copy_response c{t, 0, {0, 0, 1}};
    std::string wire;
    serialize(c, wire);
    auto r = next_frame(wire, 1024);
    REQUIRE(r.status == frame_status::complete);
    auto back = parse_copy_response(r.msg.type, r.msg.body);
    REQUIRE(back);
    CHECK(*back == c);
  }
  {
    std::string wire;
    serialize_auth_sasl({"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"}, wire);
    auto r = next_frame(wire, 1024);
    auto auth = parse_authentication(r.msg.body);
    REQUIRE(auth);
    auto mechs = sasl_mechanisms(*auth);
    REQUIRE(mechs);
    CHECK(*mechs == std::vector<std::string_view>{"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"});
  }
}

TEST_CASE("ReadyForQuery rejects unknown status bytes", "[protocol][codec]") {
  CHECK_FALSE(be::parse_ready_for_query("X"));
  CHECK(be::parse_ready_for_query("E")->status == tx_status::failed);
}
