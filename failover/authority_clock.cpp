#include "failover/authority_clock.hpp"

namespace meridian::failover {

authority_clock::change authority_clock::follow(std::uint64_t epoch, std::int64_t revision, time_point now) {
  if (epoch == epoch_) {
    revision_ = revision;
    return report(now);
  }
  // Earned under another record: not for this one.
  const bool was_held = reported_held_;
  epoch_ = epoch;
  revision_ = revision;
  until_ = {};
  confirmed_sent_ = {};
  ended_sent_ = {};
  told_ending_ = false;
  unconfirmed_ = 0;
  reported_held_ = false;
  return was_held ? change::replaced : change::none;
}

std::optional<authority_clock::renewal> authority_clock::send(time_point now) const {
  if (epoch_ == 0 || revision_ == 0) return std::nullopt;
  return renewal{epoch_, revision_, now};
}

authority_clock::change authority_clock::confirmed(const renewal& r, time_point now) {
  // A confirmation of an earlier epoch proves nothing about this one. One of an earlier
  // revision of this epoch does: the epoch's primary was current when the majority read it.
  if (r.epoch != epoch_ || epoch_ == 0) return report(now);
  // Sent before the majority said the epoch was ending: older news than that.
  if (ended_sent_ != time_point{} && r.sent <= ended_sent_) return report(now);
  unconfirmed_ = 0;
  told_ending_ = false;
  if (r.sent > confirmed_sent_) confirmed_sent_ = r.sent;
  // Answers may come out of order: a deadline only moves forward.
  const auto until = r.sent + settings_.ttl - settings_.margin;
  if (until > until_) until_ = until;
  return report(now);
}

authority_clock::change authority_clock::unconfirmed(const renewal& r, time_point now) {
  if (r.epoch == epoch_) ++unconfirmed_;
  return report(now);
}

authority_clock::change authority_clock::ended(const renewal& r, time_point now) {
  if (r.epoch != epoch_ || epoch_ == 0) return report(now);
  ++unconfirmed_;
  told_ending_ = true;
  if (r.sent > ended_sent_) ended_sent_ = r.sent;
  if (until_ > now) until_ = now;
  return report(now);
}

authority_clock::change authority_clock::tick(time_point now) { return report(now); }

authority_clock::change authority_clock::report(time_point now) {
  const bool h = held(now);
  if (h == reported_held_) return change::none;
  reported_held_ = h;
  if (h) return change::gained;
  ++lapses_;
  return change::lapsed;
}

}  // namespace meridian::failover
