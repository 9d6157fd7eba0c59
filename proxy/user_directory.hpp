#pragma once
// Users looked up with auth.query (as PgBouncer's auth_query), shared by every worker thread:
// the secret the primary stores for a user, or the fact that there is no such user, kept for
// auth.cache. A successful SCRAM login adds the keys the client proved, with which pools log in
// to the servers as that user without ever knowing the password.
#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "protocol/scram.hpp"
#include "proxy/config.hpp"

namespace meridian::proxy {

using user_ptr = std::shared_ptr<const user_config>;

class user_directory {
 public:
  using clock = std::chrono::steady_clock;
  explicit user_directory(std::chrono::milliseconds ttl = std::chrono::minutes(1), std::size_t max_entries = 100'000)
      : ttl_(ttl), max_entries_(max_entries) {}

  // A fresh answer for `name`: the user, or null when the primary said there is none.
  [[nodiscard]] std::optional<user_ptr> cached(const std::string& name, clock::time_point now) const;
  // Keeps what a look-up found (null: no such user). Keys proven for the same secret carry over.
  void store(const std::string& name, user_ptr user, clock::time_point now);
  // The client proved `keys` for `user`'s secret: the user with them, remembered for later.
  [[nodiscard]] user_ptr with_keys(const user_ptr& user, const protocol::scram_keys& keys);

  void set_ttl(std::chrono::milliseconds ttl);
  [[nodiscard]] std::size_t size() const;

 private:
  struct entry {
    user_ptr user;
    clock::time_point fetched;
  };
  mutable std::mutex mutex_;
  std::chrono::milliseconds ttl_;
  std::size_t max_entries_;
  std::unordered_map<std::string, entry> entries_;
};

// `query` with every $1 replaced by `name` as a dollar-quoted literal whose tag cannot occur in
// the name: safe whatever the name holds and whatever standard_conforming_strings says.
[[nodiscard]] std::string auth_query_sql(std::string_view query, std::string_view name);

// What the query returned for `name`: no row, no user; a row whose first column is the name
// and second a secret. A NULL or empty secret cannot log in (null, like an unknown user).
[[nodiscard]] user_ptr user_from_rows(const std::string& name, const std::vector<std::vector<std::string>>& rows);

}  // namespace meridian::proxy
