#include "proxy/statement_cache.hpp"

namespace meridian::proxy {

bool statement_cache::touch(std::string_view name) {
  auto it = index_.find(name);
  if (it == index_.end()) return false;
  lru_.splice(lru_.begin(), lru_, it->second);
  return true;
}

std::optional<std::string> statement_cache::insert(std::string_view name) {
  if (touch(name)) return std::nullopt;
  std::optional<std::string> evicted;
  if (index_.size() >= capacity_ && !lru_.empty()) {
    evicted = std::move(lru_.back());
    index_.erase(*evicted);
    lru_.pop_back();
  }
  lru_.emplace_front(name);
  index_.emplace(lru_.front(), lru_.begin());
  return evicted;
}

void statement_cache::erase(std::string_view name) {
  auto it = index_.find(name);
  if (it == index_.end()) return;
  lru_.erase(it->second);
  index_.erase(it);
}

void statement_cache::clear() {
  index_.clear();
  lru_.clear();
}

}  // namespace meridian::proxy
