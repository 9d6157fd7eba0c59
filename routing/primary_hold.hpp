#pragma once
// How long work bound for the primary waits while the primary cannot take it, before it is
// refused. Pure: the session asks once per reason it finds, with the time; the edge waits.
//
// Two kinds of wait (issue 24: a failover seen only as latency):
//  - Write authority lapsed with no failover known (this region may be cut off from the
//    majority): `write_wait`, then 57P03, as before. Holding longer would only delay the error.
//  - A failover is under way: the primary refuses connections or is gone, no primary is known,
//    or the majority told this Meridian its epoch is ending. The work never reached the lost
//    primary, so it waits for the new one, up to `hold_timeout` from when it first waited.
//    Once a failover is seen, a lapse of authority that follows (the new epoch not confirmed
//    yet) is part of it and waits as long.
#include <chrono>
#include <optional>

namespace meridian::routing {

struct primary_hold_settings {
  std::chrono::milliseconds write_wait{2000};
  std::chrono::milliseconds hold_timeout{15'000};  // 0: work is never held for a failover
};

class primary_hold {
 public:
  using clock = std::chrono::steady_clock;

  enum class reason {
    no_authority,  // write authority lapsed, nothing known of a failover
    epoch_ending,  // write authority lapsed, and the majority said a failover is ending the epoch
    primary_lost,  // no primary is known, or it refuses connections or is gone
  };

  explicit primary_hold(primary_hold_settings s) : settings_(s) {}

  // Until when the work may wait, having met `r` at `now`; at or before `now`: refuse it now.
  // Without holding (hold_timeout 0) a lost primary is refused at once and an ending epoch
  // waits write_wait, as a lapse does.
  [[nodiscard]] clock::time_point until(reason r, clock::time_point now) {
    if (!started_) started_ = now;
    if (r != reason::no_authority && settings_.hold_timeout.count() > 0) failover_ = true;
    if (failover_) return *started_ + settings_.hold_timeout;
    if (r == reason::primary_lost) return now;
    return *started_ + settings_.write_wait;
  }
  // Whether the wait is a failover's (counted and bounded as held work).
  [[nodiscard]] bool failover() const { return failover_; }
  // Whether anything was waited for (when it began: its added latency).
  [[nodiscard]] std::optional<clock::time_point> started() const { return started_; }

 private:
  primary_hold_settings settings_;
  std::optional<clock::time_point> started_;
  bool failover_ = false;
};

}  // namespace meridian::routing
