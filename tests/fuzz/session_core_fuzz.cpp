// The session core over any client byte stream: a simulated edge attaches what it asks for,
// forwards what it says, and answers with backend messages chosen by the input. Whatever comes,
// no crash, no undefined behaviour, and every forward or drop is a whole message of the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "protocol/framing.hpp"
#include "protocol/pipeline.hpp"
#include "routing/classifier.hpp"
#include "routing/session_core.hpp"

namespace r = meridian::routing;
namespace pr = meridian::protocol;

namespace {

r::statement_classifier& classifier() {
  static r::classification_cache cache(1000, std::make_shared<r::function_volatility>());
  static r::cache_classifier c(cache);
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  // The first byte steers the simulated server; the rest is what the client sent.
  const std::uint8_t steer = data[0];
  const std::string_view client(reinterpret_cast<const char*>(data + 1), size - 1);
  r::session_core core(classifier(), {1u << 20, (steer & 0x80) != 0});
  static constexpr char answers[] = {'1', '2', '3', 'C', 'D', 'E', 'G', 'H', 'I', 'n', 's', 't', 'T', 'S', 'Z', 'c', 'd'};
  pr::pipeline pl;
  std::size_t consumed = 0;
  unsigned turn = steer;
  for (std::size_t guard = 0; guard < 8 * size + 64; ++guard) {
    const auto st = core.next(client.substr(consumed), {!pl.empty(), pl.copying_in()});
    switch (st.kind) {
      case r::session_core::step_kind::need_more:
      case r::session_core::step_kind::violation:
      case r::session_core::step_kind::terminate:
        return 0;
      case r::session_core::step_kind::attach:
        pl.clear();
        core.attached((turn++ & 1) != 0);
        break;
      case r::session_core::step_kind::forward:
      case r::session_core::step_kind::drop:
      case r::session_core::step_kind::answer_ready:
      case r::session_core::step_kind::answer_lost: {
        const auto f = pr::next_frame(client.substr(consumed), 1u << 20);
        if (f.status != pr::frame_status::complete || f.msg.wire_size != st.length) std::abort();
        if (st.kind == r::session_core::step_kind::forward)
          pl.sent(f.msg.type, f.msg.body.empty() ? 'S' : f.msg.body[0]);
        consumed += st.length;
        break;
      }
      case r::session_core::step_kind::release:
        core.released();
        break;
      case r::session_core::step_kind::authorize: {
        if ((turn++ & 2) == 0) {
          core.authorize();
          break;
        }
        // Refused: the edge closes the server and answers the message itself.
        const auto f = pr::next_frame(client.substr(consumed), 1u << 20);
        if (f.status != pr::frame_status::complete || f.msg.wire_size != st.length) std::abort();
        core.abandon();
        pl.clear();
        consumed += st.length;
        break;
      }
      case r::session_core::step_kind::send_sync:
        pl.sent(pr::pending_request{pr::request_kind::sync, true});
        break;
      case r::session_core::step_kind::wait_server: {
        if (turn++ % 11 == 0) {
          // The server is lost: the edge answers what was in flight, the client goes on.
          core.server_lost(static_cast<pr::tx_status>("ITE"[turn % 3]), core.mid_batch());
          pl.clear();
          break;
        }
        // The server's answer, any type: a ReadyForQuery, or an error, as the pipeline takes it.
        const char type = answers[turn++ % sizeof answers];
        const auto v = pl.received(type);
        if (v.ready) core.server_ready(static_cast<pr::tx_status>("ITE"[turn % 3]), !v.forward);
        if (type == 'E' && !v.unsolicited) core.server_error();
        break;
      }
    }
  }
  return 0;
}
