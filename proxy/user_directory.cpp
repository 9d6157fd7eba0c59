#include "proxy/user_directory.hpp"

#include <cctype>

namespace meridian::proxy {

std::optional<user_ptr> user_directory::cached(const std::string& name, clock::time_point now) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(name);
  if (it == entries_.end() || now - it->second.fetched >= ttl_) return std::nullopt;
  return it->second.user;
}

void user_directory::store(const std::string& name, user_ptr user, clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    const auto& old = it->second.user;
    if (user && old && old->secret == user->secret && old->server_scram_keys && !user->server_scram_keys) {
      auto kept = std::make_shared<user_config>(*user);
      kept->server_scram_keys = old->server_scram_keys;
      user = std::move(kept);
    }
    it->second = entry{std::move(user), now};
    return;
  }
  if (entries_.size() >= max_entries_) {
    std::erase_if(entries_, [&](const auto& kv) { return now - kv.second.fetched >= ttl_; });
    while (entries_.size() >= max_entries_ && !entries_.empty()) entries_.erase(entries_.begin());
  }
  entries_.emplace(name, entry{std::move(user), now});
}

user_ptr user_directory::with_keys(const user_ptr& user, const protocol::scram_keys& keys) {
  auto keyed = std::make_shared<user_config>(*user);
  keyed->server_scram_keys = keys;
  user_ptr result = keyed;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(user->name);
  // Only while the directory still holds this secret: a newer look-up wins.
  if (it != entries_.end() && it->second.user && it->second.user->secret == user->secret) it->second.user = result;
  return result;
}

void user_directory::set_ttl(std::chrono::milliseconds ttl) {
  std::lock_guard lock(mutex_);
  ttl_ = ttl;
}

std::size_t user_directory::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

std::string auth_query_sql(std::string_view query, std::string_view name) {
  // The body ends at the first occurrence of the tag: it must first occur right after the name.
  std::string tag = "$m$";
  for (int n = 0; (std::string(name) + tag).find(tag) != name.size(); ++n) tag = "$m" + std::to_string(n) + "$";
  std::string literal = tag + std::string(name) + tag;
  std::string sql;
  for (std::size_t i = 0; i < query.size(); ++i) {
    if (query[i] == '$' && i + 1 < query.size() && query[i + 1] == '1' &&
        (i + 2 == query.size() || !std::isdigit(static_cast<unsigned char>(query[i + 2])))) {
      sql += literal;
      ++i;
    } else {
      sql += query[i];
    }
  }
  return sql;
}

user_ptr user_from_rows(const std::string& name, const std::vector<std::vector<std::string>>& rows) {
  if (rows.empty() || rows.front().size() < 2 || rows.front()[0] != name || rows.front()[1].empty()) return nullptr;
  auto u = std::make_shared<user_config>();
  u->name = name;
  u->secret = rows.front()[1];
  u->from_auth_query = true;
  return u;
}

}  // namespace meridian::proxy
