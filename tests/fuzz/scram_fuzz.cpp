// SCRAM-SHA-256 messages from either side, and stored verifiers. The first byte picks what the
// rest is: a client's two messages (split at the first NUL) to a server with or without
// channel binding, the server's two messages to a client, or a verifier string.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/scram.hpp"

namespace pr = meridian::protocol;

namespace {

const pr::scram_verifier& verifier() {
  static const pr::scram_verifier v = pr::scram_verifier::from_password("pencil", "salt-of-the-fuzzer", 16);
  return v;
}

std::pair<std::string_view, std::string_view> split(std::string_view s) {
  const auto nul = s.find('\0');
  if (nul == std::string_view::npos) return {s, {}};
  return {s.substr(0, nul), s.substr(nul + 1)};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto mode = data[0] % 4;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto [first, second] = split(in);
  switch (mode) {
    case 0:
    case 1: {
      const bool tls = mode == 1;
      pr::scram_server server(verifier(), "server-nonce",
                              tls ? std::optional<std::string>(std::string(32, 'h')) : std::nullopt);
      if (server.client_first(first, tls && !first.empty() && first[0] == 'p')) (void)server.client_final(second);
      break;
    }
    case 2: {
      pr::scram_client client("pencil", {}, "client-nonce");
      (void)client.client_first();
      if (client.server_first(first)) (void)client.server_final(second);
      break;
    }
    default:
      if (auto v = pr::scram_verifier::parse(in)) {
        // What parses prints back in the form it was read from.
        (void)pr::scram_verifier::parse(v->to_string());
      }
      break;
  }
  return 0;
}
