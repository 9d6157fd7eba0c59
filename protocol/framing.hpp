#pragma once
// I/O-free framing. Feed it the bytes received so far; it yields one complete message,
// "need more" (with how many bytes the message needs in total when the header is known),
// or "invalid" for a length that cannot be right. Callers keep unconsumed bytes and call again.
#include <cstddef>
#include <string_view>

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

// A typed message: 1 type byte, int32 length (counting itself), body. The length is checked
// against max_message_size before anything else happens.
[[nodiscard]] frame_result next_frame(std::string_view data, std::size_t max_message_size);

// An untyped packet of the startup phase: int32 length (counting itself), body.
[[nodiscard]] frame_result next_startup_frame(std::string_view data, std::size_t max_packet_size);

}  // namespace meridian::protocol
