#pragma once
#include <string>

#include <tl/expected.hpp>

namespace meridian::protocol {

// A violation of the wire protocol by the peer. Reported to clients as SQLSTATE 08P01.
struct protocol_error {
  std::string message;
};

template <class T>
using result = tl::expected<T, protocol_error>;

[[nodiscard]] inline tl::unexpected<protocol_error> violation(std::string message) {
  return tl::unexpected<protocol_error>(protocol_error{std::move(message)});
}

}  // namespace meridian::protocol
