#pragma once
// What the simulated network between regions does to a connection: how long each byte takes
// one way, and whether the link is cut. Pure state, changed by operator commands
// ("cut eu-west-1 us-east-1", "isolate us-east-1/postgres", "heal", "delay us-east-1 eu-west-1 40")
// and read by the relay on every delivery.
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meridian::relay {

// A service: one listening thing in one region ("us-east-1/postgres").
struct service_ref {
  std::string name;  // "<region>/<what>"
  std::string region;
};

class network_rules {
 public:
  explicit network_rules(std::vector<std::string> regions);

  const std::vector<std::string>& regions() const { return regions_; }
  bool is_region(std::string_view name) const;

  // One-way delay between two regions (0 inside a region).
  std::chrono::milliseconds delay(const std::string& a, const std::string& b) const;
  void set_delay(const std::string& a, const std::string& b, std::chrono::milliseconds d);

  // Whether traffic of a connection from `from_region` to `to` is held (a partition). Traffic
  // inside a region is never held: a region is one data centre.
  bool blocked(const std::string& from_region, const service_ref& to) const;

  // Applies one command line; returns the reply ("ok", the status lines, or "error: ...").
  // `known_service` tells whether a "<region>/<what>" name exists.
  template <class KnownService>
  std::string apply(std::string_view line, KnownService known_service) {
    return apply_words(split(line), [&](const std::string& s) { return known_service(s); });
  }

  std::string status() const;

 private:
  using link = std::pair<std::string, std::string>;  // ordered (smaller, larger)
  static link make_link(const std::string& a, const std::string& b);
  static std::vector<std::string> split(std::string_view line);
  template <class F>
  std::string apply_words(const std::vector<std::string>& w, F known_service);
  std::string region_of(const std::string& service) const;

  std::vector<std::string> regions_;
  std::map<link, std::chrono::milliseconds> delays_;
  std::set<link> cut_links_;                                // region <-> region
  std::set<std::pair<std::string, std::string>> cut_paths_;  // region -> service
  std::set<std::string> isolated_;                          // service or region, from every other region
};

template <class F>
std::string network_rules::apply_words(const std::vector<std::string>& w, F known_service) {
  auto target_ok = [&](const std::string& t) { return is_region(t) || known_service(t); };
  if (w.empty()) return "error: empty command";
  const std::string& verb = w[0];
  if (verb == "status" && w.size() == 1) return status();
  if (verb == "cut" && w.size() == 3) {
    if (!is_region(w[1])) return "error: unknown region " + w[1];
    if (!target_ok(w[2])) return "error: unknown region or service " + w[2];
    if (is_region(w[2])) {
      if (w[1] == w[2]) return "error: a region cannot be cut from itself";
      cut_links_.insert(make_link(w[1], w[2]));
    } else {
      if (region_of(w[2]) == w[1]) return "error: " + w[2] + " is in " + w[1];
      cut_paths_.emplace(w[1], w[2]);
    }
    return "ok";
  }
  if (verb == "isolate" && w.size() == 2) {
    if (!target_ok(w[1])) return "error: unknown region or service " + w[1];
    isolated_.insert(w[1]);
    return "ok";
  }
  if (verb == "heal" && w.size() == 1) {
    cut_links_.clear();
    cut_paths_.clear();
    isolated_.clear();
    return "ok";
  }
  if (verb == "heal" && w.size() == 2) {
    if (!isolated_.erase(w[1])) return "error: " + w[1] + " is not isolated";
    return "ok";
  }
  if (verb == "heal" && w.size() == 3) {
    bool healed = is_region(w[2]) ? cut_links_.erase(make_link(w[1], w[2])) > 0 : cut_paths_.erase({w[1], w[2]}) > 0;
    return healed ? "ok" : "error: " + w[1] + " -> " + w[2] + " is not cut";
  }
  if (verb == "delay" && w.size() == 4) {
    if (!is_region(w[1]) || !is_region(w[2]) || w[1] == w[2]) return "error: delay takes two different regions";
    long ms = 0;
    try {
      std::size_t used = 0;
      ms = std::stol(w[3], &used);
      if (used != w[3].size() || ms < 0 || ms > 60'000) return "error: delay must be 0..60000 ms";
    } catch (const std::exception&) {
      return "error: delay must be a number of milliseconds";
    }
    set_delay(w[1], w[2], std::chrono::milliseconds(ms));
    return "ok";
  }
  return "error: usage: status | cut REGION REGION|SERVICE | isolate REGION|SERVICE | heal [REGION [REGION|SERVICE]] | "
         "delay REGION REGION MS";
}

}  // namespace meridian::relay
