#include "routing/lag.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

namespace meridian::routing {

std::optional<lsn> lsn::parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size()) return std::nullopt;
  std::uint32_t hi = 0;
  std::uint32_t lo = 0;
  auto a = std::from_chars(text.data(), text.data() + slash, hi, 16);
  auto b = std::from_chars(text.data() + slash + 1, text.data() + text.size(), lo, 16);
  if (a.ec != std::errc{} || a.ptr != text.data() + slash || b.ec != std::errc{} || b.ptr != text.data() + text.size())
    return std::nullopt;
  return lsn{(std::uint64_t{hi} << 32) | lo};
}

std::string lsn::to_string() const {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(value >> 32), static_cast<unsigned>(value & 0xffffffffu));
  return buf;
}

wal_history::wal_history(std::chrono::milliseconds keep, std::size_t max_samples)
    : keep_(keep), max_samples_(std::max<std::size_t>(max_samples, 2)) {}

void wal_history::record(clock::time_point at, lsn primary) {
  if (!samples_.empty() && primary < samples_.back().position) samples_.clear();
  samples_.push_back({at, primary});
  // Keep one sample older than the window: it bounds lags that reach back to the window's edge.
  while (samples_.size() > 2 && (samples_.size() > max_samples_ || at - samples_[1].at > keep_)) samples_.pop_front();
}

std::optional<lsn> wal_history::latest() const {
  if (samples_.empty()) return std::nullopt;
  return samples_.back().position;
}

std::optional<replica_lag> wal_history::lag(lsn replay, clock::time_point now) const {
  if (samples_.empty()) return std::nullopt;
  replica_lag out;
  out.bytes = bytes_behind(samples_.back().position, replay);
  if (out.bytes == 0) return out;  // has everything the primary was seen to write
  // The first sample beyond the replica's position; positions never decrease in the history.
  auto beyond = std::upper_bound(samples_.begin(), samples_.end(), replay,
                                 [](lsn r, const sample& s) { return r < s.position; });
  clock::time_point since;
  clock::time_point surely_since = beyond->at;  // the primary was past `replay` by then
  if (beyond == samples_.begin()) {
    since = samples_.front().at;
    out.within_history = false;
  } else {
    const auto& before = *std::prev(beyond);  // at or below replay; `beyond` exists since bytes > 0
    const auto span = beyond->at - before.at;
    const auto fraction = static_cast<double>(replay.value - before.position.value) /
                          static_cast<double>(beyond->position.value - before.position.value);
    since = before.at + std::chrono::duration_cast<clock::duration>(span * fraction);
  }
  auto elapsed = [&](clock::time_point t) {
    return std::max(std::chrono::duration_cast<std::chrono::milliseconds>(now - t), std::chrono::milliseconds(0));
  };
  out.time = elapsed(since);
  out.at_least = elapsed(surely_since);
  return out;
}

}  // namespace meridian::routing
