#pragma once
// Replication lag, measured right: in bytes (the primary's WAL position minus the replica's
// replay position) and in time (how long ago the primary was at the replica's replay position).
// The time is read from a history of the primary's position that the node monitor samples, so
// an idle, caught-up replica lags 0 (unlike now() - pg_last_xact_replay_timestamp(), which
// grows while nothing is written), and a replica whose replay is stuck lags more every second.
#include <chrono>
#include <compare>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace meridian::routing {

// A WAL position, as pg_current_wal_lsn() prints it ("16/B374D848").
struct lsn {
  std::uint64_t value = 0;
  auto operator<=>(const lsn&) const = default;

  [[nodiscard]] static std::optional<lsn> parse(std::string_view text);
  [[nodiscard]] std::string to_string() const;
};

// Bytes of WAL `replay` is behind `primary` (0 when it is not behind).
[[nodiscard]] constexpr std::uint64_t bytes_behind(lsn primary, lsn replay) {
  return primary.value > replay.value ? primary.value - replay.value : 0;
}

struct replica_lag {
  std::uint64_t bytes = 0;
  // The best estimate: interpolated between the primary's samples around the replay position.
  std::chrono::milliseconds time{0};
  // What the replica certainly lags: the time since the primary was first seen past its replay
  // position. `time` may exceed it by up to one sampling interval, and does so fully when WAL
  // came in a burst after an idle spell (the primary's position jumped between two samples and
  // a replica a few milliseconds behind sits at the jump's start). Limits are judged on this.
  std::chrono::milliseconds at_least{0};
  // False when the replica is behind everything the history remembers: `time` is then a lower
  // bound (the true lag is at least that).
  bool within_history = true;
};

class wal_history {
 public:
  using clock = std::chrono::steady_clock;

  // Samples older than `keep` are dropped (keep it above the largest lag limit in use).
  explicit wal_history(std::chrono::milliseconds keep = std::chrono::minutes(5), std::size_t max_samples = 8192);

  // The primary's position at `at`. A position lower than the last one (a new primary on a
  // new timeline) starts the history afresh.
  void record(clock::time_point at, lsn primary);

  // The lag of a replica that had replayed up to `replay` at `now`. The primary passed
  // `replay` between the last sample at or below it and the next one; the moment is
  // interpolated from the two samples (WAL taken as written at a steady rate in between), so
  // the error is at most the time between those two samples, one sampling interval. The next
  // sample bounds it from below (`at_least`).
  [[nodiscard]] std::optional<replica_lag> lag(lsn replay, clock::time_point now) const;

  [[nodiscard]] std::size_t size() const { return samples_.size(); }
  [[nodiscard]] std::optional<lsn> latest() const;

 private:
  struct sample {
    clock::time_point at;
    lsn position;
  };
  std::chrono::milliseconds keep_;
  std::size_t max_samples_;
  std::deque<sample> samples_;
};

}  // namespace meridian::routing
