#include "proxy/cancel_registry.hpp"

#include <openssl/rand.h>

namespace meridian::proxy {

cancel_key cancel_registry::add(std::weak_ptr<session> target, asio::any_io_executor executor) {
  std::lock_guard lock(mutex_);
  for (;;) {
    std::uint32_t raw[2];
    RAND_bytes(reinterpret_cast<unsigned char*>(raw), sizeof raw);
    // Process ids are positive, as a PostgreSQL backend's would be.
    cancel_key key{static_cast<std::int32_t>((raw[0] & 0x7fffffffu) | 1u), static_cast<std::int32_t>(raw[1])};
    if (entries_.emplace(key, entry{std::move(target), executor}).second) return key;
  }
}

void cancel_registry::remove(const cancel_key& key) {
  std::lock_guard lock(mutex_);
  entries_.erase(key);
}

std::optional<cancel_registry::entry> cancel_registry::find(const cancel_key& key) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

}  // namespace meridian::proxy
