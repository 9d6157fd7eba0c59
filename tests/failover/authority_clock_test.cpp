#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "failover/authority_clock.hpp"

using namespace meridian::failover;
using namespace std::chrono_literals;
using change = authority_clock::change;

namespace {

// A fake clock: time points are counted from an arbitrary origin, never read from the system.
const authority_clock::time_point t0 = authority_clock::time_point(100s);

authority_clock make() { return authority_clock(authority_clock_settings{3000ms, 500ms}); }

}  // namespace

TEST_CASE("no authority before a record is followed and a renewal confirmed", "[failover][authority]") {
  auto c = make();
  CHECK_FALSE(c.send(t0));
  CHECK_FALSE(c.held(t0));
  CHECK(c.tick(t0) == change::none);

  CHECK(c.follow(1, 7, t0) == change::none);
  CHECK_FALSE(c.held(t0));
  const auto r = c.send(t0);
  REQUIRE(r);
  CHECK(r->epoch == 1);
  CHECK(r->revision == 7);
  CHECK(r->sent == t0);
  CHECK(c.unconfirmed(*r, t0 + 40ms) == change::none);
  CHECK_FALSE(c.held(t0 + 40ms));
}

TEST_CASE("a confirmed renewal grants until its send time plus TTL minus margin", "[failover][authority]") {
  auto c = make();
  c.follow(1, 7, t0);
  const auto r = *c.send(t0);
  CHECK(c.confirmed(r, t0 + 80ms) == change::gained);
  CHECK(c.deadline() == t0 + 2500ms);
  CHECK(c.held(t0 + 2499ms));
  CHECK(c.tick(t0 + 2499ms) == change::none);
  // Lapses at the deadline exactly, once.
  CHECK(c.tick(t0 + 2500ms) == change::lapsed);
  CHECK_FALSE(c.held(t0 + 2500ms));
  CHECK(c.tick(t0 + 2600ms) == change::none);
  CHECK(c.lapses() == 1);
}

TEST_CASE("a slow answer does not stretch the deadline, one after it grants nothing", "[failover][authority]") {
  auto c = make();
  c.follow(1, 7, t0);
  const auto slow = *c.send(t0);
  CHECK(c.confirmed(slow, t0 + 2s) == change::gained);
  CHECK(c.deadline() == t0 + 2500ms);  // from the send, not the answer

  auto d = make();
  d.follow(1, 7, t0);
  const auto late = *d.send(t0);
  CHECK(d.confirmed(late, t0 + 3s) == change::none);
  CHECK_FALSE(d.held(t0 + 3s));
}

TEST_CASE("answers out of order: the deadline only moves forward", "[failover][authority]") {
  auto c = make();
  c.follow(1, 7, t0);
  const auto first = *c.send(t0);
  const auto second = *c.send(t0 + 250ms);
  CHECK(c.confirmed(second, t0 + 300ms) == change::gained);
  CHECK(c.confirmed(first, t0 + 310ms) == change::none);
  CHECK(c.deadline() == t0 + 2750ms);
  CHECK(c.last_confirmed() == t0 + 250ms);
}

TEST_CASE("renewals keep it and when they stop it lapses at the last sent one's deadline", "[failover][authority]") {
  auto c = make();
  c.follow(1, 7, t0);
  auto now = t0;
  int gained = 0;
  for (int i = 0; i < 40; ++i, now += 250ms) {
    const auto r = *c.send(now);
    if (c.confirmed(r, now + 40ms) == change::gained) ++gained;
    CHECK(c.tick(now + 100ms) == change::none);
  }
  CHECK(gained == 1);
  const auto last = now - 250ms;
  // The majority is gone: renewals go unanswered.
  for (; now < last + 5s; now += 250ms) {
    const auto r = *c.send(now);
    c.unconfirmed(r, now + 1s);
  }
  CHECK(c.unconfirmed_in_a_row() > 0);
  CHECK_FALSE(c.held(last + 2500ms));
  CHECK(c.held(last + 2499ms));
  CHECK(c.lapses() == 1);
  // It comes back: held again.
  const auto back = *c.send(now);
  CHECK(c.confirmed(back, now + 40ms) == change::gained);
  CHECK(c.unconfirmed_in_a_row() == 0);
}

TEST_CASE("a new epoch ends authority at once and a renewal of the old one proves nothing", "[failover][authority]") {
  auto c = make();
  c.follow(1, 7, t0);
  const auto old = *c.send(t0);
  c.confirmed(old, t0 + 40ms);
  const auto in_flight = *c.send(t0 + 250ms);
  CHECK(c.follow(2, 9, t0 + 260ms) == change::replaced);
  CHECK_FALSE(c.held(t0 + 260ms));
  CHECK(c.deadline() == authority_clock::time_point{});
  CHECK(c.confirmed(in_flight, t0 + 290ms) == change::none);
  CHECK_FALSE(c.held(t0 + 290ms));
  const auto next = *c.send(t0 + 300ms);
  CHECK(next.epoch == 2);
  CHECK(next.revision == 9);
  CHECK(c.confirmed(next, t0 + 340ms) == change::gained);
  CHECK(c.deadline() == t0 + 2800ms);
  CHECK(c.lapses() == 0);
}

TEST_CASE("a new revision of the same epoch keeps authority", "[failover][authority]") {
  auto c = make();
  c.follow(1, 7, t0);
  const auto before = *c.send(t0);
  c.confirmed(before, t0 + 40ms);
  const auto in_flight = *c.send(t0 + 250ms);
  CHECK(c.follow(1, 8, t0 + 260ms) == change::none);
  CHECK(c.held(t0 + 260ms));
  CHECK(c.send(t0 + 270ms)->revision == 8);
  // Read when revision 7 was current in epoch 1: still proof for epoch 1.
  c.confirmed(in_flight, t0 + 290ms);
  CHECK(c.deadline() == t0 + 2750ms);
}

TEST_CASE("an epoch the leader is ending ends authority at once, and older renewals do not bring it back",
          "[failover][authority]") {
  auto c = make();
  c.follow(1, 7, t0);
  c.confirmed(*c.send(t0), t0 + 40ms);
  const auto before = *c.send(t0 + 250ms);
  const auto told = *c.send(t0 + 500ms);
  CHECK_FALSE(c.told_ending());
  CHECK(c.ended(told, t0 + 540ms) == change::lapsed);
  CHECK(c.told_ending());
  CHECK_FALSE(c.held(t0 + 540ms));
  CHECK(c.deadline() == t0 + 540ms);
  CHECK(c.lapses() == 1);
  // Read before the ending was committed: no proof after it.
  CHECK(c.confirmed(before, t0 + 560ms) == change::none);
  CHECK_FALSE(c.held(t0 + 560ms));
  CHECK(c.tick(t0 + 600ms) == change::none);
  // The leader gave the ending up (the primary came back): a renewal sent after grants again.
  const auto after = *c.send(t0 + 750ms);
  CHECK(c.confirmed(after, t0 + 790ms) == change::gained);
  CHECK_FALSE(c.told_ending());
  CHECK(c.deadline() == t0 + 3250ms);
  // An ending of another epoch is not this one's.
  auto d = make();
  d.follow(1, 7, t0);
  const auto old = *d.send(t0);
  d.confirmed(old, t0 + 40ms);
  d.follow(2, 9, t0 + 100ms);
  d.confirmed(*d.send(t0 + 120ms), t0 + 150ms);
  CHECK(d.ended(old, t0 + 200ms) == change::none);
  CHECK(d.held(t0 + 200ms));
}

TEST_CASE("held only within TTL minus margin of a renewal the majority confirmed, whatever the schedule",
          "[failover][authority]") {
  // Random schedules of renewals, delays, lost answers and epoch changes, checked against the
  // rule itself at every step.
  std::mt19937 rng(20261207);
  for (int run = 0; run < 200; ++run) {
    auto c = make();
    std::uint64_t epoch = 1;
    std::int64_t revision = 1;
    c.follow(epoch, revision, t0);
    struct pending {
      authority_clock::renewal r;
      authority_clock::time_point answer;
      bool ok;
    };
    std::vector<pending> flight;
    std::vector<authority_clock::renewal> proofs;  // confirmed, in the current epoch
    auto now = t0;
    for (int step = 0; step < 400; ++step) {
      now += std::chrono::milliseconds(std::uniform_int_distribution<int>(1, 400)(rng));
      const int what = std::uniform_int_distribution<int>(0, 99)(rng);
      if (what < 50) {
        if (auto r = c.send(now)) {
          const auto delay = std::chrono::milliseconds(std::uniform_int_distribution<int>(1, 4000)(rng));
          flight.push_back({*r, now + delay, std::uniform_int_distribution<int>(0, 3)(rng) != 0});
        }
      } else if (what < 53) {
        ++epoch;
        ++revision;
        c.follow(epoch, revision, now);
        proofs.clear();
      } else if (what < 56) {
        c.follow(epoch, ++revision, now);
      }
      // Answers due by now, in the order they arrive.
      std::stable_sort(flight.begin(), flight.end(), [](const pending& a, const pending& b) { return a.answer < b.answer; });
      while (!flight.empty() && flight.front().answer <= now) {
        const auto p = flight.front();
        flight.erase(flight.begin());
        if (p.ok) {
          c.confirmed(p.r, p.answer);
          if (p.r.epoch == epoch) proofs.push_back(p.r);
        } else {
          c.unconfirmed(p.r, p.answer);
        }
      }
      c.tick(now);
      bool proven = false;
      for (const auto& p : proofs) proven = proven || now < p.sent + 2500ms;
      INFO("run " << run << " step " << step);
      REQUIRE(c.held(now) == proven);
      if (c.held(now)) REQUIRE(c.epoch() == epoch);
    }
  }
}
