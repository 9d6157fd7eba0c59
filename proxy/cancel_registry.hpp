#pragma once
// Meridian issues its own BackendKeyData to every client (random, from OpenSSL's RAND_bytes)
// and maps it back to the session, wherever that session runs, when a CancelRequest arrives.
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "proxy/asio.hpp"

namespace meridian::proxy {

class session;

struct cancel_key {
  std::int32_t process_id = 0;
  std::int32_t secret_key = 0;
  auto operator<=>(const cancel_key&) const = default;
};

class cancel_registry {
 public:
  struct entry {
    std::weak_ptr<session> target;
    asio::any_io_executor executor;
  };

  [[nodiscard]] cancel_key add(std::weak_ptr<session> target, asio::any_io_executor executor);
  void remove(const cancel_key& key);
  [[nodiscard]] std::optional<entry> find(const cancel_key& key) const;

 private:
  mutable std::mutex mutex_;
  std::map<cancel_key, entry> entries_;
};

}  // namespace meridian::proxy
