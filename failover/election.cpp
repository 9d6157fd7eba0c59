#include "failover/election.hpp"

#include <spdlog/spdlog.h>

#include <vector>

namespace meridian::failover {

using proxy::error_code;
using proxy::use_awaitable;

leader_election::leader_election(etcd_client& etcd, election_settings settings, observer on_change)
    : etcd_(etcd), settings_(std::move(settings)), on_change_(std::move(on_change)) {}

bool leader_election::leading(clock::time_point now) const {
  // The lease lasts ttl from its last renewal as etcd counts it, which began after we sent
  // the renewal: keep a margin of a third of it.
  return leading_ && now < renewed_ + settings_.ttl * 2 / 3;
}

void leader_election::set(bool leading, const std::string& leader) {
  if (leading == leading_ && leader == leader_) return;
  leading_ = leading;
  leader_ = leader;
  if (on_change_) on_change_(leading, leader);
}

awaitable<void> leader_election::pause(std::chrono::milliseconds d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  error_code ec;
  co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
}

awaitable<void> leader_election::run() {
  while (!stopping_) {
    auto lease = co_await etcd_.grant(settings_.ttl);
    if (!lease) {
      spdlog::warn("election: cannot get a lease from etcd: {}", lease.error());
      set(false, "");
      co_await pause(std::chrono::milliseconds(500));
      continue;
    }
    lease_ = *lease;
    const auto sent = clock::now();
    // Built before co_await: GCC 12 mishandles temporaries in a co_await's arguments.
    std::vector<etcd_compare> absent{etcd_compare{settings_.key, etcd_compare::target::create_revision, 0, {}}};
    std::vector<etcd_op> claim{etcd_op{etcd_op::kind::put, settings_.key, settings_.id, lease_, false}};
    std::vector<etcd_op> read{etcd_op{etcd_op::kind::get, settings_.key, {}, 0, false}};
    auto won = co_await etcd_.txn(std::move(absent), std::move(claim), std::move(read));
    if (!won) {
      spdlog::warn("election: {}", won.error());
      co_await pause(std::chrono::milliseconds(500));
      continue;
    }
    if (won->succeeded) {
      renewed_ = sent;
      spdlog::info("election: {} leads", settings_.id);
      set(true, settings_.id);
      co_await hold(lease_);
      continue;
    }
    // Someone else leads: our lease is not needed while we wait.
    (void)co_await etcd_.revoke(lease_);
    lease_ = 0;
    std::string current;
    if (!won->ranges.empty() && !won->ranges[0].empty()) current = won->ranges[0][0].value;
    set(false, current);
    if (current.empty()) continue;  // deleted meanwhile: campaign again
    // Wait until the leader key goes away (its lease expired or was revoked).
    const auto from = won->revision + 1;
    std::function<bool(const std::vector<etcd_event>&, std::int64_t)> until_deleted =
        [](const std::vector<etcd_event>& events, std::int64_t) {
          for (const auto& e : events)
            if (e.deleted) return false;
          return true;
        };
    auto why = co_await etcd_.watch(settings_.key, false, from, std::move(until_deleted));
    if (!why.empty()) {
      spdlog::warn("election: watching the leader: {}", why);
      co_await pause(std::chrono::milliseconds(500));
    }
  }
}

awaitable<void> leader_election::hold(std::int64_t lease) {
  const auto every = std::chrono::duration_cast<std::chrono::milliseconds>(settings_.ttl) / 3;
  while (!stopping_) {
    co_await pause(every);
    if (stopping_) break;
    const auto sent = clock::now();
    auto ttl = co_await etcd_.keep_alive(lease);
    if (ttl && *ttl > 0) {
      renewed_ = sent;
      continue;
    }
    if (!ttl && leading(clock::now())) {
      spdlog::warn("election: renewing the lease failed, retrying: {}", ttl.error());
      continue;
    }
    spdlog::warn("election: {} lost the lead ({})", settings_.id, ttl ? "lease expired" : ttl.error());
    break;
  }
  set(false, "");
}

awaitable<void> leader_election::stop() {
  stopping_ = true;
  if (lease_ != 0) (void)co_await etcd_.revoke(lease_);
  lease_ = 0;
  set(false, "");
}

}  // namespace meridian::failover
