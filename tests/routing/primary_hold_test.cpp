#include <catch2/catch.hpp>

#include "routing/primary_hold.hpp"

using namespace meridian::routing;
using namespace std::chrono_literals;
using reason = primary_hold::reason;

namespace {
const primary_hold::clock::time_point t0{std::chrono::seconds(1000)};
}

TEST_CASE("a lapse of write authority with no failover known waits write_wait, counted from the first wait",
          "[primary_hold]") {
  primary_hold h({2s, 10s});
  CHECK(h.until(reason::no_authority, t0) == t0 + 2s);
  CHECK(h.until(reason::no_authority, t0 + 1500ms) == t0 + 2s);
  CHECK_FALSE(h.failover());
  REQUIRE(h.started());
  CHECK(*h.started() == t0);
}

TEST_CASE("a lost primary or an ending epoch holds the work up to hold_timeout", "[primary_hold]") {
  SECTION("the primary refuses connections") {
    primary_hold h({2s, 10s});
    CHECK(h.until(reason::primary_lost, t0) == t0 + 10s);
    CHECK(h.failover());
  }
  SECTION("the majority says the epoch is ending") {
    primary_hold h({2s, 10s});
    CHECK(h.until(reason::epoch_ending, t0 + 1s) == t0 + 11s);
    CHECK(h.failover());
  }
  SECTION("a lapse seen first, the failover after it: the hold counts from the first wait") {
    primary_hold h({2s, 10s});
    CHECK(h.until(reason::no_authority, t0) == t0 + 2s);
    CHECK(h.until(reason::epoch_ending, t0 + 1s) == t0 + 10s);
    // The new epoch is not confirmed yet: a lapse again, still part of the failover.
    CHECK(h.until(reason::no_authority, t0 + 5s) == t0 + 10s);
    CHECK(h.until(reason::primary_lost, t0 + 10s) == t0 + 10s);  // refused: its time is up
  }
}

TEST_CASE("without holding a lost primary is refused at once and an ending waits as a lapse does",
          "[primary_hold]") {
  primary_hold lost({2s, 0s});
  CHECK(lost.until(reason::primary_lost, t0 + 3s) == t0 + 3s);
  CHECK_FALSE(lost.failover());
  primary_hold ending({2s, 0s});
  CHECK(ending.until(reason::epoch_ending, t0) == t0 + 2s);
  CHECK_FALSE(ending.failover());
}
