#pragma once
// The write-authority clock: until when this Meridian may send work that may write to the
// primary of the topology epoch it follows. Sans-io: it takes events stamped with the caller's
// monotonic time and says what changed; write_lease does the etcd round trips, publishes the
// deadline to the sessions (routing::write_authority) and acts on the changes.
//
// The rule (Patroni's for a leader's key, applied to every Meridian): a renewal is a read at the
// etcd majority that succeeds only while the topology record is the one this Meridian applied.
// A renewal sent at t and confirmed grants authority until
//
//     t + ttl − margin
//
// t is when the renewal was sent, not when its answer came: however late the answer, the
// deadline never runs past what the majority had confirmed by then. The margin is at least the
// clock-rate drift between this Meridian and whoever counts the TTL on the majority's side, plus
// one round trip. When renewals stop being confirmed (this region lost the majority, or the
// record moved on), authority lapses at that deadline with no message from anyone.
//
// A leader about to promote first ends the epoch in etcd (the coordinator's ending key), which
// every later renewal of it fails on, and then waits ttl + margin before promoting. A Meridian
// told of the ending by the majority stops at once instead of at its deadline.
#include <chrono>
#include <cstdint>
#include <optional>

namespace meridian::failover {

struct authority_clock_settings {
  std::chrono::milliseconds ttl{3000};
  std::chrono::milliseconds margin{500};
};

class authority_clock {
 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;

  // What a renewal was sent under.
  struct renewal {
    std::uint64_t epoch = 0;
    std::int64_t revision = 0;  // etcd mod revision of the topology record it compares
    time_point sent{};
  };

  // What an event changed, as the sessions see it.
  enum class change {
    none,
    gained,    // held again (or for the first time in this epoch)
    lapsed,    // the deadline passed without a confirmed renewal
    replaced,  // a new epoch: authority over the old one ended (not a lapse)
  };

  explicit authority_clock(authority_clock_settings settings) : settings_(settings) {}

  // The topology record applied: its epoch and etcd revision. A new epoch ends authority at
  // once; a new revision of the same epoch only changes what renewals compare.
  change follow(std::uint64_t epoch, std::int64_t revision, time_point now);
  // A renewal to send now; none before a record is applied.
  [[nodiscard]] std::optional<renewal> send(time_point now) const;
  // The majority confirmed `r`: the record was unchanged when it read it.
  change confirmed(const renewal& r, time_point now);
  // The majority answered that the record changed (the watch brings the new one), or no answer
  // came: nothing is granted, and what was granted runs out at its deadline.
  change unconfirmed(const renewal& r, time_point now);
  // The majority answered that the leader is ending `r`'s epoch: authority ends now, and no
  // confirmation of a renewal sent before `r` grants it again (a later one does: the leader
  // gave the ending up).
  change ended(const renewal& r, time_point now);
  // Time passing.
  change tick(time_point now);

  [[nodiscard]] bool held(time_point now) const { return epoch_ != 0 && now < until_; }
  [[nodiscard]] std::uint64_t epoch() const { return epoch_; }
  [[nodiscard]] time_point deadline() const { return until_; }  // time_point{}: none
  // The send time of the last confirmed renewal in this epoch (time_point{}: none).
  [[nodiscard]] time_point last_confirmed() const { return confirmed_sent_; }
  [[nodiscard]] std::uint64_t lapses() const { return lapses_; }
  [[nodiscard]] std::uint64_t unconfirmed_in_a_row() const { return unconfirmed_; }
  // The last answer was that the leader is ending the epoch (not a lost majority).
  [[nodiscard]] bool told_ending() const { return told_ending_; }
  [[nodiscard]] const authority_clock_settings& settings() const { return settings_; }

 private:
  // Compares what the sessions may do now with what was last reported.
  change report(time_point now);

  authority_clock_settings settings_;
  std::uint64_t epoch_ = 0;
  std::int64_t revision_ = 0;
  time_point until_{};
  time_point confirmed_sent_{};
  time_point ended_sent_{};  // the latest renewal answered with the epoch's ending
  bool told_ending_ = false;
  bool reported_held_ = false;
  std::uint64_t lapses_ = 0;
  std::uint64_t unconfirmed_ = 0;
};

}  // namespace meridian::failover
