#include "proxy/pool.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "protocol/error.hpp"
#include "proxy/logging.hpp"

namespace meridian::proxy {

namespace pr = meridian::protocol;
using clock = std::chrono::steady_clock;

pool::pool(asio::any_io_executor ex, pool_key key, routing::node node, server_login login, pool_settings settings)
    : ex_(std::move(ex)),
      key_(std::move(key)),
      node_(std::move(node)),
      login_(std::move(login)),
      settings_(std::move(settings)),
      deadlines_(ex_) {
  report();
}

pool::~pool() {
  delivery_->owner = nullptr;  // a delivery still posted finds the pool gone
  close_idle();                // ends their pending reads
  error_code ignored;
  deadlines_.cancel(ignored);
  report_sizes({});
}

void pool::report() {
  report_sizes({static_cast<std::int64_t>(total_ - idle_.size()), static_cast<std::int64_t>(idle_.size()),
                static_cast<std::int64_t>(waiters_.size()), static_cast<std::int64_t>(settings_.max_size)});
}

void pool::report_sizes(const reported_sizes& now) {
  auto* m = settings_.meter;
  if (!m) return;
  if (now.used != reported_.used) m->used.add(now.used - reported_.used);
  if (now.idle != reported_.idle) m->idle.add(now.idle - reported_.idle);
  if (now.waiting != reported_.waiting) m->waiting.add(now.waiting - reported_.waiting);
  if (now.capacity != reported_.capacity) m->capacity.add(now.capacity - reported_.capacity);
  reported_ = now;
}

server_conn_ptr pool::take_idle() {
  while (!idle_.empty()) {
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    // A watched connection would have left the pool had its server closed it.
    if (conn->watched() || conn->looks_alive()) return conn;
    conn->close();
    --total_;
  }
  return nullptr;
}

server_conn_ptr pool::try_acquire() {
  auto conn = take_idle();
  report();
  return conn;
}

void pool::checked_out() {
  ++checkouts_;
  if (settings_.meter) settings_.meter->wait.observe(std::chrono::nanoseconds(0));
}

void pool::put_back(server_conn_ptr conn) {
  idle_.push_back(std::move(conn));
  report();
}

awaitable<tl::expected<server_conn_ptr, server_error>> pool::acquire(clock::time_point deadline) {
  if (tracing())
    spdlog::trace("pool {}: acquire (total {}, idle {}, waiting {})", node_.name, total_, idle_.size(), waiters_.size());
  // Reports the sizes and the time taken, before each co_return. (Not a destructor: a frame
  // destroyed unfinished at shutdown may outlive the pool.)
  const auto began = clock::now();
  auto finished = [this, began] {
    report();
    if (settings_.meter) settings_.meter->wait.observe(clock::now() - began);
  };
  for (;;) {
    if (auto conn = take_idle()) {
      ++checkouts_;
      finished();
      co_return conn;
    }
    // A connection opened ahead (warm) comes sooner than one begun now: wait for it in line.
    if (total_ < settings_.max_size && warming_ <= waiters_.size()) {
      ++total_;
      auto conn = std::make_shared<server_connection>(ex_, key_.node, settings_.max_prepared_per_server);
      auto tls = settings_.tls ? settings_.tls() : nullptr;
      const server_login login = login_;  // set_login may replace it while this connects
      report();
      auto r = co_await conn->establish(node_, login, settings_.connect_timeout, settings_.max_message_bytes, tls);
      if (!r) {
        --total_;
        wake_for_slot();
        finished();
        co_return tl::unexpected(r.error());
      }
      adopt(*conn);
      ++checkouts_;
      finished();
      co_return conn;
    }
    // In line with the clients that wait by callback; the handler resumes this coroutine.
    auto h = co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(handover)>(
        [this, deadline](auto handler) {
          using handler_type = decltype(handler);
          struct resume final : pool_waiter {
            explicit resume(handler_type h) : resume_with(std::move(h)) {}
            void on_handover(handover given) override { resume_with(std::move(given)); }
            handler_type resume_with;
          };
          wait(deadline, std::make_shared<resume>(std::move(handler)));
        },
        use_awaitable);
    if (h.conn) co_return std::move(h.conn);
    if (h.error) co_return tl::unexpected(std::move(*h.error));
    // Room to connect: around again.
  }
}

void pool::adopt(server_connection& conn) {
  ++connects_;
  conn.owner = this;
  if (!server_params_) server_params_ = conn.baseline;
}

void pool::warm(std::size_t n) {
  for (; n > 0 && total_ < settings_.max_size; --n) {
    ++total_;
    ++warming_;
    auto conn = std::make_shared<server_connection>(ex_, key_.node, settings_.max_prepared_per_server);
    asio::co_spawn(ex_, warm_one(delivery_, std::move(conn), login_, settings_.tls ? settings_.tls() : nullptr),
                   asio::detached);
  }
  report();
}

awaitable<void> pool::warm_one(std::shared_ptr<delivery_state> alive, server_conn_ptr conn, server_login login,
                               std::shared_ptr<const upstream_tls> tls) {
  // Copies: the pool may go while this connects.
  const routing::node node = alive->owner->node_;
  const auto timeout = alive->owner->settings_.connect_timeout;
  const auto max_message = alive->owner->settings_.max_message_bytes;
  auto r = co_await conn->establish(node, login, timeout, max_message, tls);
  auto* self = alive->owner;
  if (!self) co_return;  // the pool is gone (shutdown)
  --self->warming_;
  if (!r) {
    spdlog::info("pool {}: warming a connection failed: {}", self->node_.name, r.error().message);
    --self->total_;
    self->wake_for_slot();
    self->report();
    co_return;
  }
  self->adopt(*conn);
  self->release(std::move(conn));
}

void pool::wait(clock::time_point deadline, std::shared_ptr<pool_waiter> who) {
  waiters_.push_back(waiter{clock::now(), deadline, std::move(who)});
  if (deadline < armed_for_) arm_deadlines();
  report();
}

void pool::hand_over(handover h) {
  auto w = std::move(waiters_.front());
  waiters_.pop_front();
  if (h.conn) ++checkouts_;
  answer(std::move(w), std::move(h));
}

void pool::answer(waiter w, handover h) {
  // A wait that ended (with a connection, or past its deadline) is timed; room to connect is not
  // the end of it.
  if (settings_.meter && !h.room) settings_.meter->wait.observe(clock::now() - w.since);
  answers_.push_back(answer_to{std::move(w.who), std::move(h)});
  if (delivery_posted_) return;
  delivery_posted_ = true;
  asio::post(ex_, with_memory(delivery_->memory, [d = delivery_] {
               if (d->owner) d->owner->deliver();
             }));
}

void pool::deliver() {
  delivery_posted_ = false;  // answers given while these are delivered are posted again
  std::swap(answers_, delivering_);
  for (auto& a : delivering_) a.who->on_handover(std::move(a.given));
  delivering_.clear();
}

void pool::arm_deadlines() {
  auto earliest = clock::time_point::max();
  for (const auto& w : waiters_) earliest = std::min(earliest, w.deadline);
  armed_for_ = earliest;
  if (earliest == clock::time_point::max()) return;
  deadlines_.expires_at(earliest);
  deadlines_.async_wait([this, alive = std::weak_ptr<int>(alive_)](error_code ec) {
    if (ec || alive.expired()) return;
    expire_waiters();
  });
}

void pool::expire_waiters() {
  const auto now = clock::now();
  std::deque<waiter> kept;
  for (auto& w : waiters_) {
    if (w.deadline > now) {
      kept.push_back(std::move(w));
      continue;
    }
    ++wait_timeouts_;
    answer(std::move(w),
           handover{nullptr, false,
                    server_error{std::string(pr::sqlstate::too_many_connections),
                                 "no server connection to \"" + node_.name + "\" became free within the pool wait timeout"}});
  }
  waiters_ = std::move(kept);
  armed_for_ = clock::time_point::max();
  arm_deadlines();
  report();
}

void pool::release(server_conn_ptr conn) {
  if (tracing())
    spdlog::trace("pool {}: release (total {}, idle {}, waiting {})", node_.name, total_, idle_.size(), waiters_.size());
  conn->reader.reset();
  conn->last_used = clock::now();
  if (conn->tainted || conn->last_used - conn->created > settings_.server_lifetime || conn->created < drained_at_) {
    discard(conn);
    return;
  }
  if (total_ > settings_.max_size && waiters_.empty()) {  // the pool shrank
    discard(conn);
    return;
  }
  if (!conn->tls) conn->watch();  // (TLS: checked when taken, looks_alive)
  if (!waiters_.empty()) {
    hand_over(handover{std::move(conn), false, std::nullopt});
    report();
    return;
  }
  idle_.push_back(std::move(conn));
  report();
}

void pool::set_max_size(std::size_t n) {
  const auto before = settings_.max_size;
  settings_.max_size = n;
  while (total_ > n && !idle_.empty()) {
    idle_.back()->close();
    idle_.pop_back();
    --total_;
  }
  for (auto i = before; i < n; ++i) wake_for_slot();
  report();
}

void pool::discard(const server_conn_ptr& conn) {
  if (tracing())
    spdlog::trace("pool {}: discard (total {}, idle {}, waiting {})", node_.name, total_, idle_.size(), waiters_.size());
  conn->close();
  if (total_ > 0) --total_;
  wake_for_slot();
  report();
}

void pool::heard_while_idle(const server_conn_ptr& conn, error_code ec, std::size_t n) {
  auto it = std::find(idle_.begin(), idle_.end(), conn);
  if (it == idle_.end()) {
    if (!ec) conn->in.commit(n);
    conn->tainted = true;  // spoke unasked: not reused after its holder is done
    return;
  }
  spdlog::debug("pool {}: idle server connection closed by the server ({})", node_.name,
                ec ? ec.message() : std::string("it sent a message"));
  idle_.erase(it);
  discard(conn);
}

void pool::wake_for_slot() {
  if (!waiters_.empty()) hand_over(handover{nullptr, true, std::nullopt});
}

void pool::sweep(clock::time_point now) {
  std::erase_if(idle_, [&](const server_conn_ptr& c) {
    if (now - c->last_used > settings_.idle_timeout || now - c->created > settings_.server_lifetime ||
        !c->looks_alive()) {
      c->close();
      --total_;
      return true;
    }
    return false;
  });
  report();
}

void pool::close_idle() {
  for (auto& c : idle_) {
    c->close();
    --total_;
  }
  idle_.clear();
  report();
}

void pool::drain() {
  drained_at_ = clock::now();
  close_idle();
}

pool_stats pool::stats() const {
  return pool_stats{total_, idle_.size(), waiters_.size(), connects_, checkouts_, wait_timeouts_};
}

}  // namespace meridian::proxy
