// A server's byte stream: framing, every message decoded as its type says, and the request
// pipeline that matches responses to requests. The first bytes (up to a 0) are the frontend
// message types Meridian sent, so responses meet a pipeline in any state.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/backend.hpp"
#include "protocol/framing.hpp"
#include "protocol/pipeline.hpp"

namespace pr = meridian::protocol;
namespace be = meridian::protocol::be;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  pr::pipeline pipeline;
  const auto end_of_requests = in.find('\0');
  const std::string_view requests = in.substr(0, end_of_requests);
  in.remove_prefix(end_of_requests == std::string_view::npos ? in.size() : end_of_requests + 1);
  for (std::size_t i = 0; i < requests.size(); ++i) {
    const char type = requests[i];
    if (type == 'D') {
      pipeline.sent(type, (i % 2) ? 'P' : 'S');
    } else {
      pipeline.sent(type);
    }
  }
  while (!in.empty()) {
    auto f = pr::next_frame(in, 1u << 20);
    if (f.status != pr::frame_status::complete) break;
    if (f.msg.wire_size < pr::typed_header_size || f.msg.wire_size > in.size()) std::abort();
    in.remove_prefix(f.msg.wire_size);
    const auto body = f.msg.body;
    switch (f.msg.type) {
      case 'R':
        if (auto a = be::parse_authentication(body)) (void)be::sasl_mechanisms(*a);
        break;
      case 'K': (void)be::parse_backend_key_data(body); break;
      case 'S': (void)be::parse_parameter_status(body); break;
      case 'Z': (void)be::parse_ready_for_query(body); break;
      case 'C': (void)be::parse_command_complete(body); break;
      case 'T': (void)be::parse_row_description(body); break;
      case 'D': (void)be::parse_data_row(body); break;
      case 'E':
      case 'N': (void)be::parse_error_fields(body); break;
      case 't': (void)be::parse_parameter_description(body); break;
      case 'G':
      case 'H':
      case 'W': (void)be::parse_copy_response(f.msg.type, body); break;
      case 'A': (void)be::parse_notification(body); break;
      case 'V': (void)be::parse_function_call_response(body); break;
      case 'v': (void)be::parse_negotiate_protocol_version(body); break;
      default: break;
    }
    auto verdict = pipeline.received(f.msg.type);
    pipeline.discarded().clear();
    if (verdict.unexpected) break;  // Meridian drops such a connection
    (void)pipeline.take_local();
  }
  return 0;
}
