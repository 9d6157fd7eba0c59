#pragma once
#include <string>

#include <tl/expected.hpp>

namespace meridian::protocol {

// A violation of the wire protocol by the peer. Reported to clients as SQLSTATE 08P01 unless
// PostgreSQL uses another code for the case (an unsupported protocol version is 0A000).
struct protocol_error {
  std::string message;
  const char* sqlstate = "08P01";
};

template <class T>
using result = tl::expected<T, protocol_error>;

[[nodiscard]] inline tl::unexpected<protocol_error> violation(std::string message, const char* sqlstate = "08P01") {
  return tl::unexpected<protocol_error>(protocol_error{std::move(message), sqlstate});
}

}  // namespace meridian::protocol
