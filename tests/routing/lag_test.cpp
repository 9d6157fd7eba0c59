#include <catch2/catch.hpp>

#include "routing/lag.hpp"

using namespace meridian::routing;
using namespace std::chrono_literals;
using clock_type = wal_history::clock;

TEST_CASE("LSNs parse and print as PostgreSQL writes them", "[routing][lag]") {
  CHECK(lsn::parse("0/0")->value == 0);
  CHECK(lsn::parse("16/B374D848")->value == (0x16ull << 32 | 0xB374D848ull));
  CHECK(lsn::parse("16/b374d848")->value == (0x16ull << 32 | 0xB374D848ull));
  CHECK(lsn::parse("16/B374D848")->to_string() == "16/B374D848");
  CHECK(lsn{0}.to_string() == "0/0");
  for (const char* bad : {"", "/", "1/", "/1", "x/1", "1/x", "1/2/3", "123456789/0", "1 /2"}) {
    INFO(bad);
    CHECK_FALSE(lsn::parse(bad));
  }
  CHECK(bytes_behind(lsn{100}, lsn{40}) == 60);
  CHECK(bytes_behind(lsn{40}, lsn{100}) == 0);
}

TEST_CASE("an idle, caught-up replica lags zero however long it stays idle", "[routing][lag]") {
  wal_history h;
  const auto t0 = clock_type::now();
  h.record(t0, lsn{1000});
  for (int i = 1; i <= 120; ++i) h.record(t0 + i * 500ms, lsn{1000});  // nothing written for a minute
  auto l = h.lag(lsn{1000}, t0 + 60s);
  REQUIRE(l);
  CHECK(l->bytes == 0);
  CHECK(l->time == 0ms);
}

TEST_CASE("a replica whose replay is stuck lags more as the primary writes", "[routing][lag]") {
  wal_history h;
  const auto t0 = clock_type::now();
  // The primary writes 100 bytes per 500 ms sample; the replica stopped replaying at 1000.
  for (int i = 0; i <= 20; ++i) h.record(t0 + i * 500ms, lsn{1000 + 100 * static_cast<std::uint64_t>(i)});
  auto at_5s = h.lag(lsn{1000}, t0 + 5s);
  auto at_10s = h.lag(lsn{1000}, t0 + 10s);
  REQUIRE(at_5s);
  REQUIRE(at_10s);
  CHECK(at_10s->bytes == 2000);
  // The primary was last at 1000 at t0: the lag is the time since. It was seen past 1000 at
  // 500 ms: the lag is surely that much less.
  CHECK(at_5s->time == 5s);
  CHECK(at_10s->time == 10s);
  CHECK(at_5s->at_least == 4500ms);
  CHECK(at_10s->at_least == 9500ms);
  CHECK(at_10s->within_history);
}

TEST_CASE("a write after an idle spell: the estimate is one interval high, the lower bound is not", "[routing][lag]") {
  // Idle for 2 s at 1000, sampled every 250 ms; a transaction at 2,240 ms writes 3,000 bytes,
  // seen at the 2,250 ms sample. The replica, probed at 2,253 ms, has not replayed it yet.
  wal_history h;
  const auto t0 = clock_type::now();
  for (int i = 0; i <= 8; ++i) h.record(t0 + i * 250ms, lsn{1000});
  h.record(t0 + 2250ms, lsn{4000});
  auto l = h.lag(lsn{1000}, t0 + 2253ms);
  REQUIRE(l);
  CHECK(l->bytes == 3000);
  // The primary left 1000 somewhere in (2,000 ms, 2,250 ms]: the estimate takes the earliest
  // moment, the lower bound the latest. The true lag, 13 ms, lies between them.
  CHECK(l->time == 253ms);
  CHECK(l->at_least == 3ms);
  CHECK(l->at_least <= l->time);
  // Caught up at the next probe: no lag either way.
  auto next = h.lag(lsn{4000}, t0 + 2350ms);
  CHECK(next->time == 0ms);
  CHECK(next->at_least == 0ms);
}

TEST_CASE("lag time is interpolated between the samples around the replay position", "[routing][lag]") {
  wal_history h;
  const auto t0 = clock_type::now();
  h.record(t0, lsn{1000});
  h.record(t0 + 500ms, lsn{2000});
  h.record(t0 + 1000ms, lsn{3000});
  // Replayed up to 2500: the primary passed 2500 between 500 ms and 1000 ms, at 750 ms if it
  // wrote steadily. The true lag lies in [200 ms, 700 ms): the error is under one interval.
  auto l = h.lag(lsn{2500}, t0 + 1200ms);
  REQUIRE(l);
  CHECK(l->bytes == 500);
  CHECK(l->time == 450ms);
  CHECK(l->at_least == 200ms);  // the primary was past 2500 at 1000 ms
  CHECK(h.lag(lsn{2900}, t0 + 1200ms)->time == 250ms);
  // Exactly at a sample's position: caught up to that moment.
  CHECK(h.lag(lsn{2000}, t0 + 1200ms)->time == 700ms);
  CHECK(h.lag(lsn{3000}, t0 + 1200ms)->time == 0ms);
  // A replica observed before the primary's sample that passed it lags 0, not less.
  CHECK(h.lag(lsn{2500}, t0 + 600ms)->time == 0ms);
}

TEST_CASE("a replica a few milliseconds behind a busy primary lags a few milliseconds", "[routing][lag]") {
  // The primary writes 1 MB/s and is sampled every 250 ms; the replica replays 5 ms behind.
  wal_history h;
  const auto t0 = clock_type::now();
  for (int i = 0; i <= 8; ++i) h.record(t0 + i * 250ms, lsn{1'000'000 + 250'000 * static_cast<std::uint64_t>(i)});
  const auto now = t0 + 1900ms;
  const auto replay = lsn{1'000'000 + 1'895'000};  // where the primary was at 1895 ms
  auto l = h.lag(replay, now);
  REQUIRE(l);
  CHECK(l->time >= 4ms);
  CHECK(l->time <= 6ms);
}

TEST_CASE("a replica behind the whole history reports a lower bound", "[routing][lag]") {
  wal_history h(2s);
  const auto t0 = clock_type::now();
  for (int i = 0; i <= 20; ++i) h.record(t0 + i * 500ms, lsn{1000 + 100 * static_cast<std::uint64_t>(i)});
  CHECK(h.size() <= 6);  // older samples fell out of the 2 s window
  auto l = h.lag(lsn{500}, t0 + 10s);
  REQUIRE(l);
  CHECK_FALSE(l->within_history);
  CHECK(l->time >= 2s);
  CHECK(l->at_least == l->time);
}

TEST_CASE("a lower primary position starts a new history", "[routing][lag]") {
  wal_history h;
  const auto t0 = clock_type::now();
  h.record(t0, lsn{5000});
  h.record(t0 + 1s, lsn{100});  // a promoted replica, its own numbering
  CHECK(h.size() == 1);
  CHECK(h.latest() == lsn{100});
  CHECK_FALSE(wal_history{}.lag(lsn{1}, t0));
}
