#pragma once
// Failed logins per (client address, user), shared by all worker threads. Each failure that
// follows another within `window` doubles the delay before it is answered (base_delay up to
// max_delay), which slows password guessing to a crawl without holding a thread; after
// max_failures such failures the pair is refused before authentication until `window` passes
// without one. Keyed by address and user together, so a guesser locks out only itself, not
// the user's legitimate clients elsewhere nor other users behind the same address.
#include <chrono>
#include <cstddef>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace meridian::proxy {

class login_throttle {
 public:
  using clock = std::chrono::steady_clock;
  struct settings {
    std::size_t max_failures = 10;  // 0: never lock out (delays still apply)
    std::chrono::milliseconds window{60'000};
    std::chrono::milliseconds base_delay{250};  // 0: no delays
    std::chrono::milliseconds max_delay{5'000};
    std::size_t max_tracked = 100'000;  // pairs remembered at most (memory bound under a spray)
  };

  login_throttle() = default;
  explicit login_throttle(settings s) : settings_(s) {}

  // Before authenticating: how long the pair remains locked out, if it is.
  [[nodiscard]] std::optional<std::chrono::milliseconds> locked_out(std::string_view address, std::string_view user,
                                                                    clock::time_point now);
  // After a failed attempt: how long to wait before telling the client.
  [[nodiscard]] std::chrono::milliseconds failed(std::string_view address, std::string_view user, clock::time_point now);
  // A successful login forgets the pair's failures.
  void succeeded(std::string_view address, std::string_view user);

  void set_settings(settings s);
  [[nodiscard]] std::size_t tracked() const;

 private:
  struct entry {
    std::size_t failures = 0;
    clock::time_point last;
  };
  static std::string key(std::string_view address, std::string_view user);
  void make_room(clock::time_point now);

  mutable std::mutex mutex_;
  settings settings_;
  std::unordered_map<std::string, entry> entries_;
};

}  // namespace meridian::proxy
