#pragma once
// I/O-free framing. Feed it the bytes received so far; it yields one complete message,
// "need more" (with how many bytes the message needs in total when the header is known),
// or "invalid" for a length that cannot be right. Callers keep unconsumed bytes and call again.
#include <cstddef>
#include <string_view>

#include "protocol/byte_order.hpp"

namespace meridian::protocol {

inline constexpr std::size_t typed_header_size = 5;    // type byte + int32 length
inline constexpr std::size_t startup_header_size = 4;  // int32 length

struct frame {
  char type = 0;          // 0 for untyped startup-phase packets
  std::string_view body;  // bytes after the header
  std::size_t wire_size = 0;
};

enum class frame_status { complete, need_more, invalid };

struct frame_result {
  frame_status status = frame_status::need_more;
  frame msg;
  // When need_more and the header was read: total bytes the whole message occupies.
  std::size_t needed = 0;
  const char* reason = nullptr;  // for invalid
};

[[nodiscard]] frame_result invalid_frame(const char* reason);

// A typed message: 1 type byte, int32 length (counting itself), body. The length is checked
// against max_message_size before anything else happens. Inline: it runs for every message
// relayed, in both directions.
[[nodiscard]] inline frame_result next_frame(std::string_view data, std::size_t max_message_size) {
  frame_result r;
  if (data.size() < typed_header_size) return r;
  const auto length = get_i32(data.data() + 1);
  if (length < 4) return invalid_frame("message length is smaller than its own header");
  if (static_cast<std::size_t>(length) > max_message_size) return invalid_frame("message exceeds the maximum message size");
  const std::size_t total = typed_header_size + static_cast<std::size_t>(length) - 4;
  if (data.size() < total) {
    r.needed = total;
    return r;
  }
  r.status = frame_status::complete;
  r.msg.type = data[0];
  r.msg.body = std::string_view(data.data() + typed_header_size, total - typed_header_size);
  r.msg.wire_size = total;
  return r;
}

// An untyped packet of the startup phase: int32 length (counting itself), body.
[[nodiscard]] frame_result next_startup_frame(std::string_view data, std::size_t max_packet_size);

}  // namespace meridian::protocol
