#include "failover/write_lease.hpp"

#include <atomic>
#include <vector>

#include <spdlog/spdlog.h>

namespace meridian::failover {

using proxy::error_code;
using proxy::use_awaitable;

namespace {
std::int64_t ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}
}  // namespace

std::string authority_epoch_key(const std::string& prefix, std::uint64_t epoch) {
  return prefix + std::to_string(epoch) + "/";
}

std::string holder_key(const std::string& prefix, std::uint64_t epoch, const std::string& token) {
  return authority_epoch_key(prefix, epoch) + "holder/" + token;
}

std::string release_key(const std::string& prefix, std::uint64_t epoch, std::int64_t ending_revision,
                        const std::string& token) {
  return authority_epoch_key(prefix, epoch) + "released/" + std::to_string(ending_revision) + "/" + token;
}

write_lease::write_lease(etcd_client& etcd, write_lease_settings settings, routing::write_authority& authority)
    : etcd_(etcd),
      settings_(std::move(settings)),
      authority_(authority),
      clock_(authority_clock_settings{settings_.ttl, settings_.margin}) {
  authority_.revoke(0);  // none until the majority confirms a renewal
}

void write_lease::follow(std::uint64_t epoch, const std::string& primary, std::int64_t revision) {
  const auto now = clock::now();
  const auto previous = clock_.epoch();
  const auto c = clock_.follow(epoch, revision, now);
  if (epoch != previous) primary_ = primary;
  publish(c, now);
  // A new epoch: its first renewal goes now, not an interval later (held writes wait for it).
  if (epoch != previous && renew_wait_) renew_wait_->cancel();
}

awaitable<void> write_lease::pause(clock::duration d) {
  asio::steady_timer t(co_await asio::this_coro::executor, d);
  error_code ec;
  co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
}

awaitable<void> write_lease::run() {
  asio::co_spawn(co_await asio::this_coro::executor, watch_deadline(), asio::detached);
  co_await renew_loop();
}

awaitable<void> write_lease::renew_loop() {
  for (;;) {
    const auto sent = clock::now();
    const auto epoch_sent = clock_.epoch();
    if (const auto r = clock_.send(sent)) {
      // A linearizable read: etcd's leader answers only after a majority of members confirmed
      // it still leads. It must read a key in both branches: a transaction without operations
      // counts as serializable and any member answers it alone, even one cut off from the rest.
      // Version 0 is a key that does not exist.
      const std::string ending = settings_.ending_key + std::to_string(r->epoch);
      std::vector<etcd_compare> current{{settings_.topology_key, etcd_compare::target::mod_revision, r->revision, {}},
                                        {ending, etcd_compare::target::version, 0, {}}};
      std::vector<etcd_op> read{{etcd_op::kind::get, settings_.topology_key, {}, 0, false}};
      // The first in an epoch registers this Meridian as a holder, atomically with the grant.
      const bool registering = registered_ != r->epoch && !settings_.authority_key.empty();
      if (registering)
        read.push_back({etcd_op::kind::put, holder_key(settings_.authority_key, r->epoch, settings_.token), {}, 0, false});
      std::vector<etcd_op> why{{etcd_op::kind::get, settings_.topology_key, {}, 0, false},
                               {etcd_op::kind::get, ending, {}, 0, false}};
      auto answer = co_await etcd_.txn(std::move(current), std::move(read), std::move(why));
      const auto now = clock::now();
      if (answer && answer->succeeded) {
        if (registering) registered_ = r->epoch;
        publish(clock_.confirmed(*r, now), now);
      } else if (answer && answer->ranges.size() == 2 && !answer->ranges[1].empty()) {
        if (told_ending_ != r->epoch) {
          told_ending_ = r->epoch;
          spdlog::error("write authority: the leader is ending epoch {} ({}): writes to {} are refused from now on",
                        r->epoch, answer->ranges[1].front().value, primary_);
        }
        publish(clock_.ended(*r, now), now);
        co_await release(r->epoch, answer->ranges[1].front().create_revision, now);
      } else {
        if (!answer && clock_.unconfirmed_in_a_row() == 0)
          spdlog::warn("write authority: renewal for epoch {} unanswered: {}", r->epoch, answer.error());
        publish(clock_.unconfirmed(*r, now), now);
      }
    }
    const auto spent = clock::now() - sent;
    if (spent < settings_.interval && clock_.epoch() == epoch_sent) {
      asio::steady_timer t(co_await asio::this_coro::executor, settings_.interval - spent);
      renew_wait_ = &t;
      error_code ec;
      co_await t.async_wait(asio::redirect_error(use_awaitable, ec));
      renew_wait_ = nullptr;
    }
  }
}

awaitable<void> write_lease::watch_deadline() {
  // Independent of the renewals, which may each hang up to the client's timeout.
  for (;;) {
    auto now = clock::now();
    publish(clock_.tick(now), now);
    auto next = now + settings_.interval / 2;
    if (const auto until = clock_.deadline(); until > now && until < next) next = until;
    co_await pause(next - now);
  }
}

awaitable<void> write_lease::release(std::uint64_t epoch, std::int64_t ending_revision, clock::time_point now) {
  if (!settings_.quiet || settings_.authority_key.empty() || clock_.held(now) || clock_.epoch() != epoch) co_return;
  if (released_epoch_ == epoch && released_revision_ == ending_revision) co_return;
  // The sessions read the authority just withdrawn before they send work that may write; a
  // session that read it a moment before holds a server connection by then. Quiet twice, half
  // an interval apart, leaves no such race open.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!settings_.quiet(primary_)) {
    quiet_epoch_ = 0;
    co_return;
  }
  if (quiet_epoch_ != epoch || quiet_revision_ != ending_revision) {
    quiet_epoch_ = epoch;
    quiet_revision_ = ending_revision;
    quiet_since_ = now;
    co_return;
  }
  if (now - quiet_since_ < settings_.interval / 2) co_return;
  const std::string ending = settings_.ending_key + std::to_string(epoch);
  std::vector<etcd_compare> same_ending{{ending, etcd_compare::target::create_revision, ending_revision, {}}};
  std::vector<etcd_op> put{
      {etcd_op::kind::put, release_key(settings_.authority_key, epoch, ending_revision, settings_.token), {}, 0, false}};
  auto r = co_await etcd_.txn(std::move(same_ending), std::move(put), {});
  if (!r || !r->succeeded) co_return;  // the ending was given up (or no answer): asked again next time
  released_epoch_ = epoch;
  released_revision_ = ending_revision;
  spdlog::warn("write authority: released epoch {} to the leader: nothing of this Meridian is in flight on {}", epoch,
               primary_);
}

void write_lease::publish(authority_clock::change c, clock::time_point now) {
  // The sessions see exactly the clock's state, whatever changed.
  const auto current = authority_.current();
  if (current.epoch != clock_.epoch() || current.until != clock_.deadline()) authority_.grant(clock_.epoch(), clock_.deadline());
  authority_.set_ending(clock_.told_ending());
  switch (c) {
    case authority_clock::change::none: return;
    case authority_clock::change::gained:
      told_ending_ = 0;
      spdlog::warn("write authority: held for epoch {} (primary {}), until {} ms from now", clock_.epoch(), primary_,
                   ms(clock_.deadline() - now));
      break;
    case authority_clock::change::lapsed:
      spdlog::error("write authority: lapsed for epoch {}: no renewal confirmed by the etcd majority in {} ms "
                    "(this region lost its quorum, or the topology moved on); writes to {} are refused",
                    clock_.epoch(),
                    clock_.last_confirmed() == clock::time_point{} ? -1 : ms(now - clock_.last_confirmed()), primary_);
      break;
    case authority_clock::change::replaced:
      spdlog::info("write authority: over the previous epoch ended: epoch {} (primary {}) begins, held once renewed",
                   clock_.epoch(), primary_);
      break;
  }
  if (on_change_) on_change_(c, clock_.epoch(), primary_);
}

}  // namespace meridian::failover
