#include "protocol/error.hpp"

#include "protocol/codec.hpp"
#include "protocol/message_types.hpp"

namespace meridian::protocol {

void append_error(std::string& out, severity sev, std::string_view code, std::string_view message) {
  const std::string_view s = sev == severity::fatal ? "FATAL" : "ERROR";
  message_writer w(out, backend_type::error_response);
  w.u8('S').cstring(s).u8('V').cstring(s).u8('C').cstring(code).u8('M').cstring(message).u8(0);
}

}  // namespace meridian::protocol
