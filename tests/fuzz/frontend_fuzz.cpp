// A client's byte stream after start-up: framing, then every message decoded as its type says.
// What Meridian rewrites (Query, Parse, Bind) must serialize back to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/framing.hpp"
#include "protocol/frontend.hpp"
#include "protocol/message_types.hpp"

namespace pr = meridian::protocol;
namespace fe = meridian::protocol::fe;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  while (!in.empty()) {
    auto f = pr::next_frame(in, 1u << 20);
    if (f.status != pr::frame_status::complete) break;
    if (f.msg.wire_size < pr::typed_header_size || f.msg.wire_size > in.size()) std::abort();
    const std::string_view wire = in.substr(0, f.msg.wire_size);
    in.remove_prefix(f.msg.wire_size);
    (void)fe::validate(f.msg.type, f.msg.body);
    switch (f.msg.type) {
      case 'Q':
        if (auto q = fe::parse_query(f.msg.body)) {
          std::string out;
          fe::serialize(*q, out);
          if (out != wire) std::abort();
        }
        break;
      case 'P':
        if (auto p = fe::parse_parse(f.msg.body)) {
          std::string out;
          fe::serialize(*p, out);
          if (out != wire) std::abort();
        }
        break;
      case 'B':
        if (auto b = fe::parse_bind(f.msg.body)) {
          std::string out;
          fe::serialize(*b, out);
          if (out != wire) std::abort();
          if (auto params = fe::parse_bind_parameters(b->tail)) {
            std::string tail;
            fe::serialize_bind_parameters(*params, tail);
            if (tail != b->tail) std::abort();
          }
        }
        break;
      case 'D': (void)fe::parse_describe(f.msg.body); break;
      case 'E': (void)fe::parse_execute(f.msg.body); break;
      case 'C': (void)fe::parse_close(f.msg.body); break;
      case 'd': (void)fe::parse_copy_data(f.msg.body); break;
      case 'f': (void)fe::parse_copy_fail(f.msg.body); break;
      case 'F': (void)fe::parse_function_call(f.msg.body); break;
      case 'p':
        (void)fe::parse_password_message(f.msg.body);
        (void)fe::parse_sasl_initial_response(f.msg.body);
        (void)fe::parse_sasl_response(f.msg.body);
        break;
      default: break;
    }
  }
  return 0;
}
