#pragma once
// The wire's integers: big-endian, as PostgreSQL sends them. Inline: the framing reads a length
// per message on the data path.
#include <cstdint>

namespace meridian::protocol {

inline void put_i32(char* at, std::int32_t v) {
  auto u = static_cast<std::uint32_t>(v);
  at[0] = static_cast<char>((u >> 24) & 0xff);
  at[1] = static_cast<char>((u >> 16) & 0xff);
  at[2] = static_cast<char>((u >> 8) & 0xff);
  at[3] = static_cast<char>(u & 0xff);
}

[[nodiscard]] inline std::int32_t get_i32(const char* at) {
  auto b = reinterpret_cast<const unsigned char*>(at);
  return static_cast<std::int32_t>((std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) |
                                   (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]});
}

[[nodiscard]] inline std::int16_t get_i16(const char* at) {
  auto b = reinterpret_cast<const unsigned char*>(at);
  return static_cast<std::int16_t>((std::uint16_t{b[0]} << 8) | std::uint16_t{b[1]});
}

}  // namespace meridian::protocol
