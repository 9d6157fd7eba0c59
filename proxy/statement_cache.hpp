#pragma once
// The prepared statements one server connection holds, by Meridian's server-side name, with
// least-recently-used eviction so a long-lived connection cannot accumulate them without bound.
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "protocol/string_hash.hpp"

namespace meridian::proxy {

class statement_cache {
 public:
  explicit statement_cache(std::size_t capacity) : capacity_(capacity) {}

  // True (and marks it recently used) when the connection has the statement.
  [[nodiscard]] bool touch(std::string_view name);
  // Adds a statement; returns the name evicted to make room, which the caller must Close.
  [[nodiscard]] std::optional<std::string> insert(std::string_view name);
  void erase(std::string_view name);
  void clear();
  [[nodiscard]] std::size_t size() const { return index_.size(); }

 private:
  std::size_t capacity_;
  std::list<std::string> lru_;  // front = most recent
  std::unordered_map<std::string, std::list<std::string>::iterator, protocol::string_hash, std::equal_to<>> index_;
};

}  // namespace meridian::proxy
