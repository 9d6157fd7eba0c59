#include "proxy/login_throttle.hpp"

#include <catch2/catch.hpp>

using meridian::proxy::login_throttle;
using namespace std::chrono_literals;

TEST_CASE("failed logins are answered ever more slowly, then locked out for the window", "[proxy][throttle]") {
  login_throttle t({.max_failures = 4, .window = 60s, .base_delay = 100ms, .max_delay = 500ms});
  const auto t0 = login_throttle::clock::now();
  CHECK_FALSE(t.locked_out("10.0.0.1", "app", t0));
  CHECK(t.failed("10.0.0.1", "app", t0) == 100ms);
  CHECK(t.failed("10.0.0.1", "app", t0 + 1s) == 200ms);
  CHECK(t.failed("10.0.0.1", "app", t0 + 2s) == 400ms);
  CHECK_FALSE(t.locked_out("10.0.0.1", "app", t0 + 3s));
  CHECK(t.failed("10.0.0.1", "app", t0 + 3s) == 500ms);  // capped
  auto locked = t.locked_out("10.0.0.1", "app", t0 + 4s);
  REQUIRE(locked);
  CHECK(*locked == 59s);  // a window from the last failure
  // Only that pair: the same user elsewhere and another user at that address are free.
  CHECK_FALSE(t.locked_out("10.0.0.2", "app", t0 + 4s));
  CHECK_FALSE(t.locked_out("10.0.0.1", "other", t0 + 4s));
  // The window passes without failures: free again, the streak forgotten.
  CHECK_FALSE(t.locked_out("10.0.0.1", "app", t0 + 64s));
  CHECK(t.failed("10.0.0.1", "app", t0 + 65s) == 100ms);
}

TEST_CASE("a success forgets the failures; old failures do not count", "[proxy][throttle]") {
  login_throttle t({.max_failures = 2, .window = 10s, .base_delay = 50ms, .max_delay = 1s});
  const auto t0 = login_throttle::clock::now();
  (void)t.failed("a", "u", t0);
  t.succeeded("a", "u");
  (void)t.failed("a", "u", t0 + 1s);
  CHECK_FALSE(t.locked_out("a", "u", t0 + 1s));
  (void)t.failed("a", "u", t0 + 20s);  // the first is out of the window: a new streak
  CHECK_FALSE(t.locked_out("a", "u", t0 + 20s));
  (void)t.failed("a", "u", t0 + 21s);
  CHECK(t.locked_out("a", "u", t0 + 21s));
}

TEST_CASE("no lock-out and no delay when configured off", "[proxy][throttle]") {
  login_throttle t({.max_failures = 0, .window = 10s, .base_delay = 0ms, .max_delay = 0ms});
  const auto t0 = login_throttle::clock::now();
  for (int i = 0; i < 50; ++i) CHECK(t.failed("a", "u", t0) == 0ms);
  CHECK_FALSE(t.locked_out("a", "u", t0));
}

TEST_CASE("the table of streaks stays bounded under a spray of names", "[proxy][throttle]") {
  login_throttle t({.max_failures = 3, .window = 10s, .base_delay = 1ms, .max_delay = 1ms, .max_tracked = 100});
  const auto t0 = login_throttle::clock::now();
  for (int i = 0; i < 1000; ++i) (void)t.failed("a", "user" + std::to_string(i), t0);
  CHECK(t.tracked() <= 100);
  // Expired streaks make room first.
  for (int i = 0; i < 50; ++i) (void)t.failed("b", "user" + std::to_string(i), t0 + 11s);
  CHECK(t.tracked() <= 100);
}
