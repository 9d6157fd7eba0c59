#include "protocol/framing.hpp"

namespace meridian::protocol {

frame_result invalid_frame(const char* reason) {
  frame_result r;
  r.status = frame_status::invalid;
  r.reason = reason;
  return r;
}

frame_result next_startup_frame(std::string_view data, std::size_t max_packet_size) {
  frame_result r;
  if (data.size() < startup_header_size) return r;
  const auto length = get_i32(data.data());
  // The shortest valid packet is a length plus a 4-byte code (SSLRequest).
  if (length < 8) return invalid_frame("startup packet length is too small");
  if (static_cast<std::size_t>(length) > max_packet_size) return invalid_frame("startup packet is too large");
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
