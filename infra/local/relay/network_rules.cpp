#include "infra/local/relay/network_rules.hpp"

#include <algorithm>
#include <sstream>

namespace meridian::relay {

network_rules::network_rules(std::vector<std::string> regions) : regions_(std::move(regions)) {}

bool network_rules::is_region(std::string_view name) const {
  return std::find(regions_.begin(), regions_.end(), name) != regions_.end();
}

network_rules::link network_rules::make_link(const std::string& a, const std::string& b) {
  return a < b ? link{a, b} : link{b, a};
}

std::vector<std::string> network_rules::split(std::string_view line) {
  std::vector<std::string> words;
  std::istringstream in{std::string(line)};
  for (std::string w; in >> w;) words.push_back(std::move(w));
  return words;
}

std::string network_rules::region_of(const std::string& service) const {
  return service.substr(0, service.find('/'));
}

std::chrono::milliseconds network_rules::delay(const std::string& a, const std::string& b) const {
  if (a == b) return {};
  auto it = delays_.find(make_link(a, b));
  return it == delays_.end() ? std::chrono::milliseconds{} : it->second;
}

void network_rules::set_delay(const std::string& a, const std::string& b, std::chrono::milliseconds d) {
  delays_[make_link(a, b)] = d;
}

bool network_rules::blocked(const std::string& from_region, const service_ref& to) const {
  if (from_region == to.region) return false;
  return cut_links_.count(make_link(from_region, to.region)) > 0 || cut_paths_.count({from_region, to.name}) > 0 ||
         isolated_.count(to.name) > 0 || isolated_.count(to.region) > 0 || isolated_.count(from_region) > 0;
}

std::string network_rules::status() const {
  std::ostringstream out;
  for (std::size_t i = 0; i < regions_.size(); ++i)
    for (std::size_t j = i + 1; j < regions_.size(); ++j) {
      const auto& a = regions_[i];
      const auto& b = regions_[j];
      bool cut = cut_links_.count(make_link(a, b)) || isolated_.count(a) || isolated_.count(b);
      out << "link " << a << " " << b << " " << delay(a, b).count() << "ms" << (cut ? " cut" : "") << "\n";
    }
  for (const auto& [from, to] : cut_paths_) out << "cut " << from << " -> " << to << "\n";
  for (const auto& what : isolated_) out << "isolated " << what << "\n";
  std::string s = out.str();
  if (!s.empty()) s.pop_back();
  return s;
}

}  // namespace meridian::relay
