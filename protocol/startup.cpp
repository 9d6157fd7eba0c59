#include "protocol/startup.hpp"

#include "protocol/codec.hpp"
#include "protocol/message_types.hpp"

namespace meridian::protocol {

std::string_view startup_message::get(std::string_view key) const {
  for (const auto& [k, v] : parameters)
    if (k == key) return v;
  return {};
}

result<startup_packet> parse_startup_packet(std::string_view body) {
  body_reader in(body);
  const auto code = in.i32();
  if (in.failed()) return violation("startup packet is too short");
  startup_packet p;
  switch (code) {
    case ssl_request_code:
      if (!in.complete()) return violation("SSLRequest has trailing bytes");
      p.kind = startup_kind::ssl_request;
      return p;
    case gssenc_request_code:
      if (!in.complete()) return violation("GSSENCRequest has trailing bytes");
      p.kind = startup_kind::gssenc_request;
      return p;
    case cancel_request_code:
      p.kind = startup_kind::cancel_request;
      p.cancel.process_id = in.i32();
      p.cancel.secret_key = in.i32();
      if (!in.complete()) return violation("CancelRequest has the wrong length");
      return p;
    default:
      break;
  }
  if (protocol_major(code) != 3)
    return violation("unsupported frontend protocol " + std::to_string(protocol_major(code)) + "." +
                     std::to_string(protocol_minor(code)) + ": server supports 3.0 to 3.0",
                     "0A000");
  p.startup.protocol_version = code;
  for (;;) {
    auto key = in.cstring();
    if (in.failed()) return violation("startup packet parameters are not terminated");
    if (key.empty()) break;
    auto value = in.cstring();
    if (in.failed()) return violation("startup packet parameter \"" + std::string(key) + "\" has no value");
    p.startup.parameters.emplace_back(key, value);
  }
  if (!in.complete()) return violation("startup packet has bytes after its terminator");
  if (p.startup.get("user").empty()) return violation("no PostgreSQL user name specified in startup packet");
  return p;
}

void serialize(const startup_message& m, std::string& out) {
  message_writer w(out, 0);
  w.i32(m.protocol_version);
  for (const auto& [k, v] : m.parameters) w.cstring(k).cstring(v);
  w.u8(0);
}

void serialize(const cancel_request& m, std::string& out) {
  message_writer w(out, 0);
  w.i32(cancel_request_code).i32(m.process_id).i32(m.secret_key);
}

void serialize_ssl_request(std::string& out) {
  message_writer w(out, 0);
  w.i32(ssl_request_code);
}

void serialize_gssenc_request(std::string& out) {
  message_writer w(out, 0);
  w.i32(gssenc_request_code);
}

}  // namespace meridian::protocol
