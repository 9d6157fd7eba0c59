#include "protocol/framing.hpp"

#include "protocol/codec.hpp"

namespace meridian::protocol {

namespace {
frame_result invalid(const char* reason) {
  frame_result r;
  r.status = frame_status::invalid;
  r.reason = reason;
  return r;
}
}  // namespace

frame_result next_frame(std::string_view data, std::size_t max_message_size) {
  frame_result r;
  if (data.size() < typed_header_size) return r;
  const auto length = get_i32(data.data() + 1);
  if (length < 4) return invalid("message length is smaller than its own header");
  const auto body_size = static_cast<std::size_t>(length) - 4;
  if (static_cast<std::size_t>(length) > max_message_size) return invalid("message exceeds the maximum message size");
  const std::size_t total = typed_header_size + body_size;
  if (data.size() < total) {
    r.needed = total;
    return r;
  }
  r.status = frame_status::complete;
  r.msg.type = data[0];
  r.msg.body = data.substr(typed_header_size, body_size);
  r.msg.wire_size = total;
  return r;
}

frame_result next_startup_frame(std::string_view data, std::size_t max_packet_size) {
  frame_result r;
  if (data.size() < startup_header_size) return r;
  const auto length = get_i32(data.data());
  // The shortest valid packet is a length plus a 4-byte code (SSLRequest).
  if (length < 8) return invalid("startup packet length is too small");
  if (static_cast<std::size_t>(length) > max_packet_size) return invalid("startup packet is too large");
  const auto total = static_cast<std::size_t>(length);
  if (data.size() < total) {
    r.needed = total;
    return r;
  }
  r.status = frame_status::complete;
  r.msg.body = data.substr(startup_header_size, total - startup_header_size);
  r.msg.wire_size = total;
  return r;
}

}  // namespace meridian::protocol
