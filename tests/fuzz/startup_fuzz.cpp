// Start-up phase packets as a client sends them: framing by length, then StartupMessage,
// SSLRequest, GSSENCRequest or CancelRequest. A parsed StartupMessage must survive a round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/framing.hpp"
#include "protocol/startup.hpp"

namespace pr = meridian::protocol;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  while (!in.empty()) {
    auto f = pr::next_startup_frame(in, 10'000);
    if (f.status != pr::frame_status::complete) break;
    if (f.msg.wire_size == 0 || f.msg.wire_size > in.size()) std::abort();  // framing must make progress
    in.remove_prefix(f.msg.wire_size);
    auto p = pr::parse_startup_packet(f.msg.body);
    if (!p || p->kind != pr::startup_kind::startup) continue;
    std::string again;
    pr::serialize(p->startup, again);
    auto reframed = pr::next_startup_frame(again, 1u << 20);
    if (reframed.status != pr::frame_status::complete) std::abort();
    auto reparsed = pr::parse_startup_packet(reframed.msg.body);
    if (!reparsed || !(reparsed->startup == p->startup)) std::abort();
  }
  return 0;
}
