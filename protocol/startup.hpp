#pragma once
// The untyped packets a client may send first: StartupMessage, SSLRequest, GSSENCRequest,
// CancelRequest. All parse from the body that follows the int32 length.
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/result.hpp"

namespace meridian::protocol {

struct startup_message {
  std::int32_t protocol_version = 196608;
  std::vector<std::pair<std::string_view, std::string_view>> parameters;

  [[nodiscard]] std::string_view get(std::string_view key) const;
  bool operator==(const startup_message&) const = default;
};

struct cancel_request {
  std::int32_t process_id = 0;
  std::int32_t secret_key = 0;
  bool operator==(const cancel_request&) const = default;
};

enum class startup_kind { startup, ssl_request, gssenc_request, cancel_request };

struct startup_packet {
  startup_kind kind = startup_kind::startup;
  startup_message startup;  // kind == startup
  cancel_request cancel;    // kind == cancel_request
};

// Rejects: unknown request codes, protocol major versions other than 3, parameter lists that
// are not NUL-terminated pairs closed by an empty name, and a missing "user".
[[nodiscard]] result<startup_packet> parse_startup_packet(std::string_view body);

void serialize(const startup_message& m, std::string& out);
void serialize(const cancel_request& m, std::string& out);
void serialize_ssl_request(std::string& out);
void serialize_gssenc_request(std::string& out);

[[nodiscard]] constexpr int protocol_major(std::int32_t version) { return version >> 16; }
[[nodiscard]] constexpr int protocol_minor(std::int32_t version) { return version & 0xffff; }

}  // namespace meridian::protocol
