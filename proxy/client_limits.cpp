#include "proxy/client_limits.hpp"

namespace meridian::proxy {

std::optional<std::string> client_limits::admit(const std::string& user, const std::string& database,
                                                std::size_t max_per_user, std::size_t max_per_database) {
  std::lock_guard lock(mutex_);
  auto& u = users_[user];
  auto& d = databases_[database];
  if (max_per_user > 0 && u >= max_per_user) return "too many connections for role \"" + user + "\"";
  if (max_per_database > 0 && d >= max_per_database) return "too many connections for database \"" + database + "\"";
  ++u;
  ++d;
  return std::nullopt;
}

void client_limits::release(const std::string& user, const std::string& database) {
  std::lock_guard lock(mutex_);
  if (auto it = users_.find(user); it != users_.end() && it->second > 0 && --it->second == 0) users_.erase(it);
  if (auto it = databases_.find(database); it != databases_.end() && it->second > 0 && --it->second == 0) databases_.erase(it);
}

std::size_t client_limits::of_user(const std::string& user) const {
  std::lock_guard lock(mutex_);
  auto it = users_.find(user);
  return it == users_.end() ? 0 : it->second;
}

}  // namespace meridian::proxy
