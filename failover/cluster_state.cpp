#include "failover/cluster_state.hpp"

#include <algorithm>
#include <cstdio>
#include <limits>

#include <nlohmann/json.hpp>

#include "failover/read_policy.hpp"

namespace meridian::failover {

using json = nlohmann::json;

std::string topology_record::to_json() const {
  return json{{"epoch", epoch}, {"primary", primary}, {"fenced", fenced}, {"reason", reason}}.dump();
}

std::optional<topology_record> topology_record::from_json(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("epoch") || !j["epoch"].is_number_unsigned() ||
      !j.contains("primary") || !j["primary"].is_string())
    return std::nullopt;
  topology_record r;
  r.epoch = j["epoch"].get<std::uint64_t>();
  r.primary = j["primary"].get<std::string>();
  r.reason = j.value("reason", std::string());
  if (auto f = j.find("fenced"); f != j.end() && f->is_array())
    for (const auto& n : *f)
      if (n.is_string()) r.fenced.push_back(n.get<std::string>());
  return r;
}

std::string region_view::to_json() const {
  json nodes_json = json::object();
  for (const auto& [name, v] : nodes) {
    nodes_json[name] = json{{"probed", v.probed},
                            {"reachable", v.reachable},
                            {"unreachable_ms", v.unreachable_ms},
                            {"refused", v.refused},
                            {"in_recovery", v.in_recovery},
                            {"timeline", v.timeline},
                            {"wal", v.wal.to_string()},
                            {"receive", v.receive.to_string()},
                            {"replay", v.replay.to_string()},
                            {"lag_bytes", v.lag_bytes},
                            {"readable", v.readable}};
    if (v.lag_ms) nodes_json[name]["lag_ms"] = *v.lag_ms;
    if (v.rtt_us) nodes_json[name]["rtt_us"] = *v.rtt_us;
  }
  return json{{"region", region}, {"epoch", epoch}, {"paused", paused}, {"nodes", nodes_json}}.dump();
}

std::optional<region_view> region_view::from_json(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("region") || !j["region"].is_string()) return std::nullopt;
  region_view v;
  v.region = j["region"].get<std::string>();
  v.epoch = j.value("epoch", std::uint64_t{0});
  v.paused = j.value("paused", false);
  const json nodes = j.value("nodes", json::object());
  for (const auto& [name, n] : nodes.items()) {
    if (!n.is_object()) continue;
    node_view nv;
    nv.probed = n.value("probed", false);
    nv.reachable = n.value("reachable", false);
    nv.unreachable_ms = n.value("unreachable_ms", std::int64_t{0});
    nv.refused = n.value("refused", false);
    nv.in_recovery = n.value("in_recovery", false);
    nv.timeline = n.value("timeline", std::uint32_t{0});
    nv.wal = routing::lsn::parse(n.value("wal", std::string())).value_or(routing::lsn{});
    nv.receive = routing::lsn::parse(n.value("receive", std::string())).value_or(routing::lsn{});
    nv.replay = routing::lsn::parse(n.value("replay", std::string())).value_or(routing::lsn{});
    if (n.contains("lag_ms") && n["lag_ms"].is_number_integer()) nv.lag_ms = n["lag_ms"].get<std::int64_t>();
    nv.lag_bytes = n.value("lag_bytes", std::uint64_t{0});
    nv.readable = n.value("readable", false);
    if (n.contains("rtt_us") && n["rtt_us"].is_number_integer()) nv.rtt_us = n["rtt_us"].get<std::int64_t>();
    v.nodes[name] = nv;
  }
  return v;
}

region_view view_of(const routing::topology& topo, const std::string& region, std::chrono::steady_clock::time_point now) {
  region_view v;
  v.region = region;
  v.epoch = topo.epoch;
  for (const auto& n : topo.nodes) {
    if (n.removed) continue;
    const auto& h = topo.state(n.id).health;
    node_view nv;
    nv.probed = h.probed;
    nv.reachable = h.probed && h.reachable;
    if (h.probed && !h.reachable) {
      nv.unreachable_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - h.last_seen).count();
      nv.refused = h.refused;
    }
    nv.in_recovery = h.in_recovery;
    nv.timeline = h.timeline;
    nv.wal = h.wal;
    nv.receive = h.receive;
    nv.replay = h.replay;
    if (h.lag) {
      nv.lag_ms = h.lag->time.count();
      nv.lag_bytes = h.lag->bytes;
    }
    nv.readable = h.readable && topo.state(n.id).role == routing::node_role::replica;
    if (h.probe_latency.count() > 0) nv.rtt_us = h.probe_latency.count();
    v.nodes[n.name] = nv;
  }
  return v;
}

bool primary_lost(const std::vector<region_view>& views, const std::string& primary, std::size_t regions,
                  std::chrono::milliseconds detection, std::string& why,
                  std::optional<std::chrono::milliseconds> refused_detection) {
  const auto refused_after = std::min(detection, refused_detection.value_or(detection)).count();
  std::size_t lost = 0;
  std::vector<std::string> saw_lost;
  std::vector<std::string> saw_up;
  for (const auto& v : views) {
    auto it = v.nodes.find(primary);
    if (it == v.nodes.end() || !it->second.probed) continue;
    const auto& n = it->second;
    if (!n.reachable && (n.unreachable_ms >= detection.count() || (n.refused && n.unreachable_ms >= refused_after))) {
      ++lost;
      saw_lost.push_back(v.region + " (" + std::to_string(n.unreachable_ms) + " ms" + (n.refused ? ", refused" : "") + ")");
    } else {
      saw_up.push_back(v.region);
    }
  }
  auto join = [](const std::vector<std::string>& xs) {
    std::string out;
    for (const auto& x : xs) out += (out.empty() ? "" : ", ") + x;
    return out.empty() ? std::string("none") : out;
  };
  why = "primary " + primary + " unreachable from " + join(saw_lost) + "; reachable (or not for long) from " +
        join(saw_up) + "; " + std::to_string(regions) + " regions";
  return lost * 2 > regions;
}

bool every_holder_released(const std::vector<std::string>& holders, const std::vector<std::string>& released) {
  return std::all_of(holders.begin(), holders.end(), [&](const std::string& h) {
    return std::find(released.begin(), released.end(), h) != released.end();
  });
}

namespace {
// What each replica has (received or replayed, as the best-informed view saw it), and the
// failed primary's last position.
std::map<std::string, routing::lsn> replica_positions(const std::vector<region_view>& views,
                                                      const std::vector<std::string>& replicas,
                                                      const std::string& failed_primary, routing::lsn* primary_wal) {
  std::map<std::string, routing::lsn> position;
  for (const auto& v : views) {
    for (const auto& [name, n] : v.nodes) {
      if (name == failed_primary) {
        if (primary_wal) *primary_wal = std::max(*primary_wal, n.wal);
        continue;
      }
      if (std::find(replicas.begin(), replicas.end(), name) == replicas.end()) continue;
      if (!n.reachable || !n.in_recovery) continue;
      auto& p = position[name];
      p = std::max({p, n.receive, n.replay});
    }
  }
  return position;
}

std::string milliseconds(std::int64_t us) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f ms", static_cast<double>(us) / 1000.0);
  return text;
}

// The round trip between a replica and the lost primary: as the replica's region last measured
// it to the primary, else as the primary's region last measured it to the replica.
std::optional<std::int64_t> distance_from(const std::vector<region_view>& views,
                                          const std::map<std::string, std::string>& regions,
                                          const std::string& failed_primary, const std::string& replica) {
  auto measured = [&](const std::string& from_node, const std::string& to_node) -> std::optional<std::int64_t> {
    const auto region = regions.find(from_node);
    if (region == regions.end()) return std::nullopt;
    for (const auto& v : views)
      if (v.region == region->second)
        if (auto it = v.nodes.find(to_node); it != v.nodes.end() && it->second.rtt_us) return it->second.rtt_us;
    return std::nullopt;
  };
  if (auto d = measured(replica, failed_primary)) return d;
  return measured(failed_primary, replica);
}

std::vector<std::string> ahead(const std::map<std::string, routing::lsn>& position, routing::lsn of) {
  std::vector<std::string> out;
  for (const auto& [name, p] : position)
    if (p > of) out.push_back(name);
  return out;
}
}  // namespace

std::vector<std::string> ahead_of(const std::vector<region_view>& views, const std::vector<std::string>& replicas,
                                  const std::string& failed_primary, const std::string& node) {
  const auto position = replica_positions(views, replicas, failed_primary, nullptr);
  const auto it = position.find(node);
  return it == position.end() ? std::vector<std::string>{} : ahead(position, it->second);
}

std::string describe(const std::vector<candidate_report>& candidates) {
  std::string out;
  for (const auto& c : candidates) {
    if (!out.empty()) out += ", ";
    out += c.node + " (rank " + std::to_string(c.rank) + ", ";
    if (c.distance_us) {
      out += milliseconds(*c.distance_us) + " from the primary, ";
    } else {
      out += "distance unknown, ";
    }
    out += "received " + c.position.to_string() + ", " +
           std::to_string(c.behind_bytes) + " bytes behind the primary, lag " +
           (c.lag_ms ? std::to_string(*c.lag_ms) + " ms" : std::string("unknown")) + ")";
  }
  return out.empty() ? "none" : out;
}

candidate_choice choose_candidate(const std::vector<region_view>& views, const std::vector<std::string>& replicas,
                                  const std::string& failed_primary, const candidate_settings& settings) {
  candidate_choice out;
  routing::lsn primary_wal;
  auto position = replica_positions(views, replicas, failed_primary, &primary_wal);
  if (position.empty()) {
    out.reason = "no replica is reachable and in recovery";
    return out;
  }
  std::vector<std::string> ranked = settings.order;
  for (const auto& r : replicas)
    if (std::find(ranked.begin(), ranked.end(), r) == ranked.end()) ranked.push_back(r);
  std::map<std::string, std::int64_t> distance;
  for (const auto& r : ranked)
    if (auto d = distance_from(views, settings.regions, failed_primary, r)) distance[r] = *d;
  if (settings.measured) {
    // By measured distance, in the read policy's buckets (a fifth apart): replicas about as
    // near keep the configured order, and the unmeasured follow the measured.
    auto bucket = [&](const std::string& r) {
      auto it = distance.find(r);
      return it == distance.end() ? std::numeric_limits<int>::max()
                                  : latency_bucket(std::chrono::microseconds(it->second));
    };
    std::stable_sort(ranked.begin(), ranked.end(),
                     [&](const std::string& a, const std::string& b) { return bucket(a) < bucket(b); });
  }
  std::string first;
  for (const auto& r : ranked)
    if (position.count(r)) {
      first = r;
      break;
    }
  std::string best = first;
  for (const auto& r : ranked)  // the most caught up; the nearest among equals
    if (position.count(r) && position[r] > position[best]) best = r;
  std::string chosen = first;
  const auto gap = routing::bytes_behind(position[best], position[first]);
  if (gap > settings.prefer_ahead_bytes) {
    chosen = best;
    out.reason = chosen + " is " + std::to_string(gap) + " bytes ahead of " + first;
  } else if (gap > 0) {
    out.catch_up_from = best;
    out.catch_up_to = position[best];
    out.reason = chosen + " is the nearest replica; it first catches up the " + std::to_string(gap) +
                 " bytes it lacks from " + best;
  } else {
    out.reason = chosen + " is the nearest caught-up replica";
    if (auto d = distance.find(chosen); d != distance.end())
      out.reason += " (" + milliseconds(d->second) + " from the primary)";
  }
  out.node = chosen;
  out.position = out.catch_up_from ? out.catch_up_to : position[chosen];
  out.diverged = ahead(position, out.position);
  if (!out.diverged.empty()) {
    out.reason += "; ahead of it, so fenced until rejoined:";
    for (const auto& d : out.diverged) out.reason += " " + d;
  }
  out.loss_bytes = routing::bytes_behind(primary_wal, out.position);
  out.primary_wal = primary_wal;
  for (std::size_t i = 0; i < ranked.size(); ++i) {
    const auto& r = ranked[i];
    if (!position.count(r)) continue;
    candidate_report c{r, i + 1, std::nullopt, position[r], routing::bytes_behind(primary_wal, position[r]), std::nullopt};
    if (auto d = distance.find(r); d != distance.end()) c.distance_us = d->second;
    for (const auto& v : views)
      if (auto it = v.nodes.find(r); it != v.nodes.end() && it->second.lag_ms && it->second.reachable)
        c.lag_ms = c.lag_ms ? std::min(*c.lag_ms, *it->second.lag_ms) : *it->second.lag_ms;
    if (r == chosen) out.window_ms = c.lag_ms;
    out.candidates.push_back(std::move(c));
  }
  if (settings.max_loss_bytes > 0 && out.loss_bytes > settings.max_loss_bytes) {
    out.blocked = true;
    out.reason = "promoting " + chosen + " would lose " + std::to_string(out.loss_bytes) + " bytes of WAL, over the " +
                 std::to_string(settings.max_loss_bytes) + "-byte guard: waiting for an operator's promote";
  }
  return out;
}

}  // namespace meridian::failover
