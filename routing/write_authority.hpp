#pragma once
// Write authority as the sessions read it: until when this Meridian may send work that may
// write to the primary of a topology epoch. One writer (the coordinator's thread, from
// failover::authority_clock), every worker reading it once per transaction that needs the
// primary: a sequence lock, so that a reader never pairs one epoch with another's deadline.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>

namespace meridian::routing {

class write_authority {
 public:
  using clock = std::chrono::steady_clock;

  struct grant_view {
    std::uint64_t epoch = 0;  // 0: any epoch (no coordination)
    clock::time_point until;  // time_point{}: none
  };

  // Without coordination (one Meridian deciding alone) authority never ends.
  void grant_forever() { set(0, clock::time_point::max()); }
  // Work for `epoch` may start before `until`. A later grant replaces an earlier one.
  void grant(std::uint64_t epoch, clock::time_point until) { set(epoch, until); }
  // None, from now on (no proof yet, or the epoch changed).
  void revoke(std::uint64_t epoch) { set(epoch, clock::time_point{}); }

  [[nodiscard]] grant_view current() const {
    for (;;) {
      const auto s1 = seq_.load(std::memory_order_acquire);
      if (s1 & 1U) continue;  // a grant is being written (rare, and short)
      grant_view g{epoch_.load(std::memory_order_relaxed), clock::time_point(clock::duration(until_.load(std::memory_order_relaxed)))};
      std::atomic_thread_fence(std::memory_order_acquire);
      if (seq_.load(std::memory_order_relaxed) == s1) return g;
    }
  }

  // Whether the etcd majority told this Meridian that the epoch is ending: a failover is under
  // way (as opposed to a lapse, where this region may be cut off). Work that may write is then
  // held for the new primary (routing/primary_hold.hpp).
  void set_ending(bool ending) { ending_.store(ending, std::memory_order_relaxed); }
  [[nodiscard]] bool ending() const { return ending_.load(std::memory_order_relaxed); }

  // May work for the primary of `epoch` start at `now`?
  [[nodiscard]] bool allows(std::uint64_t epoch, clock::time_point now = clock::now()) const {
    const auto g = current();
    return now < g.until && (g.epoch == 0 || g.epoch == epoch);
  }

 private:
  void set(std::uint64_t epoch, clock::time_point until) {
    const auto s = seq_.load(std::memory_order_relaxed);
    seq_.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    epoch_.store(epoch, std::memory_order_relaxed);
    until_.store(until.time_since_epoch().count(), std::memory_order_relaxed);
    seq_.store(s + 2, std::memory_order_release);
  }

  std::atomic<std::uint64_t> seq_{0};
  std::atomic<std::uint64_t> epoch_{0};
  std::atomic<clock::rep> until_{0};
  std::atomic<bool> ending_{false};  // steady_clock ticks since its epoch; 0: none
};

}  // namespace meridian::routing
