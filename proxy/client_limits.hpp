#pragma once
// Client connections per user and per database, across all worker threads, against the
// configured limits (0: none). A session is admitted after authentication, as PostgreSQL
// checks a role's connection limit, so that clients who cannot log in cannot use up a user's
// slots.
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace meridian::proxy {

class client_limits {
 public:
  // Counts the client in, or says which limit it would exceed (and counts nothing).
  [[nodiscard]] std::optional<std::string> admit(const std::string& user, const std::string& database,
                                                 std::size_t max_per_user, std::size_t max_per_database);
  void release(const std::string& user, const std::string& database);
  [[nodiscard]] std::size_t of_user(const std::string& user) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::size_t, std::less<>> users_;
  std::map<std::string, std::size_t, std::less<>> databases_;
};

}  // namespace meridian::proxy
