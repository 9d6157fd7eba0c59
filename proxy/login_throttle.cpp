#include "proxy/login_throttle.hpp"

#include <algorithm>

namespace meridian::proxy {

std::string login_throttle::key(std::string_view address, std::string_view user) {
  std::string k;
  k.reserve(address.size() + 1 + user.size());
  k.append(address).push_back('\0');  // neither an address nor a user name holds a NUL
  k.append(user);
  return k;
}

std::optional<std::chrono::milliseconds> login_throttle::locked_out(std::string_view address, std::string_view user,
                                                                    clock::time_point now) {
  std::lock_guard lock(mutex_);
  if (settings_.max_failures == 0) return std::nullopt;
  auto it = entries_.find(key(address, user));
  if (it == entries_.end()) return std::nullopt;
  const auto until = it->second.last + settings_.window;
  if (now >= until) {
    entries_.erase(it);
    return std::nullopt;
  }
  if (it->second.failures < settings_.max_failures) return std::nullopt;
  return std::chrono::ceil<std::chrono::milliseconds>(until - now);
}

std::chrono::milliseconds login_throttle::failed(std::string_view address, std::string_view user, clock::time_point now) {
  std::lock_guard lock(mutex_);
  auto k = key(address, user);
  auto it = entries_.find(k);
  if (it == entries_.end()) {
    make_room(now);
    it = entries_.emplace(std::move(k), entry{}).first;
  } else if (now - it->second.last >= settings_.window) {
    it->second.failures = 0;  // an old streak does not count
  }
  auto& e = it->second;
  ++e.failures;
  e.last = now;
  if (settings_.base_delay.count() <= 0) return std::chrono::milliseconds(0);
  // base, 2×base, 4×base, ... up to max_delay (the shift is bounded before it can overflow).
  const auto doublings = std::min<std::size_t>(e.failures - 1, 20);
  const auto delay = settings_.base_delay * (std::int64_t{1} << doublings);
  return std::min(delay, std::max(settings_.max_delay, settings_.base_delay));
}

void login_throttle::succeeded(std::string_view address, std::string_view user) {
  std::lock_guard lock(mutex_);
  entries_.erase(key(address, user));
}

void login_throttle::set_settings(settings s) {
  std::lock_guard lock(mutex_);
  settings_ = s;
}

std::size_t login_throttle::tracked() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

void login_throttle::make_room(clock::time_point now) {
  if (entries_.size() < settings_.max_tracked) return;
  std::erase_if(entries_, [&](const auto& kv) { return now - kv.second.last >= settings_.window; });
  // Still full of live streaks: forget some rather than grow without bound.
  while (entries_.size() >= settings_.max_tracked && !entries_.empty()) entries_.erase(entries_.begin());
}

}  // namespace meridian::proxy
