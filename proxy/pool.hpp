#pragma once
// Server connections to one (node, user, database), owned by one worker thread, so checkout and
// return take no lock. Idle connections are reused newest first (warm caches); a client that
// finds the pool at its limit waits in line until a connection is returned or its deadline passes:
// the returned connection goes straight to the first in line, and one timer per pool (not one
// per waiter) ends the waits that outlast their deadline.
#include <chrono>
#include <cstddef>
#include <functional>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "proxy/asio.hpp"
#include "proxy/handler_memory.hpp"
#include "proxy/meters.hpp"
#include "proxy/server_connection.hpp"
#include "routing/topology.hpp"

namespace meridian::proxy {

struct pool_key {
  routing::node_id node;
  std::string user;
  std::string database;
  bool operator==(const pool_key&) const = default;
};

struct pool_key_hash {
  std::size_t operator()(const pool_key& k) const {
    return std::hash<std::string>{}(k.user) * 31 + std::hash<std::string>{}(k.database) * 7 + k.node.value;
  }
};

struct pool_settings {
  std::size_t max_size = 10;  // this worker's share
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds idle_timeout{600'000};
  std::chrono::milliseconds server_lifetime{3'600'000};
  std::size_t max_prepared_per_server = 500;
  std::size_t max_message_bytes = 64u << 20;
  // The node's TLS as of now (null: plaintext); unset: always plaintext.
  std::function<std::shared_ptr<const upstream_tls>()> tls;
  // Where the pool reports its sizes and checkout waits (the worker's, for this node); may be null.
  pool_meter* meter = nullptr;
};

struct pool_stats {
  std::size_t total = 0;  // idle + in use + connecting
  std::size_t idle = 0;
  std::size_t waiting = 0;
  std::uint64_t connects = 0;
  std::uint64_t checkouts = 0;
  std::uint64_t wait_timeouts = 0;
};

// What a client waiting in line is given, on the pool's executor (never inside the call that
// freed it): a connection, room to connect one (a connection was closed: the client connects,
// if nobody took the room first), or why the wait ended (53300: the deadline passed).
struct handover {
  server_conn_ptr conn;
  bool room = false;
  std::optional<server_error> error;
};

// Who waits in a pool's line (a session; pool::acquire's coroutine): given a handover on the
// pool's executor.
class pool_waiter {
 public:
  virtual void on_handover(handover h) = 0;

 protected:
  ~pool_waiter() = default;
};

class pool {
 public:
  pool(asio::any_io_executor ex, pool_key key, routing::node node, server_login login, pool_settings settings);
  ~pool();
  pool(const pool&) = delete;
  pool& operator=(const pool&) = delete;

  // A connection ready for use, or why none could be had (53300 after waiting past the
  // deadline; the server's own error when connecting failed).
  [[nodiscard]] awaitable<tl::expected<server_conn_ptr, server_error>> acquire(
      std::chrono::steady_clock::time_point deadline);
  // An idle connection, if one is at hand now (no waiting, no connecting): acquire's common case,
  // without a coroutine. Not counted as a checkout until checked_out(); put_back() returns it
  // unused.
  [[nodiscard]] server_conn_ptr try_acquire();
  void checked_out();
  void put_back(server_conn_ptr conn);
  // Whether a client finding no idle connection must wait (the pool is at its size) rather
  // than connect.
  [[nodiscard]] bool full() const { return total_ >= settings_.max_size; }
  // Queues `who` for the next connection returned (counted as a checkout when handed over).
  void wait(std::chrono::steady_clock::time_point deadline, std::shared_ptr<pool_waiter> who);
  // Returns a connection with nothing in flight and no open transaction.
  void release(server_conn_ptr conn);
  // Closes a connection that is broken or carries state that cannot be reset.
  void discard(const server_conn_ptr& conn);
  // What a watched connection with no reader received (server_connection::watch): an idle
  // connection is going away and leaves the pool; one handed out and not read from yet keeps the
  // bytes for its holder.
  void heard_while_idle(const server_conn_ptr& conn, error_code ec, std::size_t n);
  // New credentials for connections made from now on (an auth.query user's changed secret or
  // newly proven keys); connections already logged in stay.
  void set_login(server_login login) { login_ = std::move(login); }
  // The node's new address (a reload): connections made from now on go there. Call drain() too.
  void set_node(routing::node n) { node_ = std::move(n); }
  // A new size (reload): idle connections beyond it close now, busy ones when given back;
  // clients waiting get the new slots.
  void set_max_size(std::size_t n);
  [[nodiscard]] const server_login& login() const { return login_; }
  // Opens up to `n` connections in the background (none beyond the pool's size), which join the
  // idle ones or go to clients in line: a node about to take work (a replica just promoted) is
  // ready for it when it comes. Failures are logged only.
  void warm(std::size_t n);
  // Closes idle connections past idle_timeout or server_lifetime.
  void sweep(std::chrono::steady_clock::time_point now);
  // Closes everything idle (node lost its role, shutdown).
  void close_idle();
  // The node changed role: idle connections close now, busy ones when they are given back.
  void drain();

  [[nodiscard]] pool_stats stats() const;
  [[nodiscard]] const pool_settings& settings() const { return settings_; }
  // Idle connections, for SHOW SERVERS.
  [[nodiscard]] const std::vector<server_conn_ptr>& idle() const { return idle_; }
  [[nodiscard]] const pool_key& key() const { return key_; }
  [[nodiscard]] const routing::node& node() const { return node_; }
  // Parameters a fresh server connection reported, remembered to greet clients without a server.
  [[nodiscard]] const std::optional<param_map>& server_params() const { return server_params_; }

 private:
  std::chrono::steady_clock::time_point drained_at_{};  // connections made before this are not reused
  struct waiter {
    std::chrono::steady_clock::time_point since;
    std::chrono::steady_clock::time_point deadline;
    std::shared_ptr<pool_waiter> who;
  };
  // The first waiter gets `h` (posted to the executor).
  void hand_over(handover h);
  // Gives `w` its answer (posted), timing the wait when it ended.
  void answer(waiter w, handover h);
  // The answers given since the last delivery, in order: one posted handler delivers them all.
  void deliver();
  void wake_for_slot();
  // A connection this pool just established: counted, owned, its parameters remembered.
  void adopt(server_connection& conn);
  struct delivery_state;
  static awaitable<void> warm_one(std::shared_ptr<delivery_state> alive, server_conn_ptr conn, server_login login,
                                  std::shared_ptr<const upstream_tls> tls);
  // The pool's one deadline timer: armed for the earliest deadline in line.
  void arm_deadlines();
  void expire_waiters();
  // The newest idle connection that still looks alive (dead ones closed on the way); null when
  // none is idle. Not counted as a checkout: the caller does.
  server_conn_ptr take_idle();
  // Brings the meter up to date with the pool's sizes (their changes since the last report).
  struct reported_sizes {
    std::int64_t used = 0, idle = 0, waiting = 0, capacity = 0;
  };
  void report();
  void report_sizes(const reported_sizes& now);

  asio::any_io_executor ex_;
  pool_key key_;
  routing::node node_;
  server_login login_;
  pool_settings settings_;
  std::vector<server_conn_ptr> idle_;
  std::size_t total_ = 0;
  std::size_t warming_ = 0;  // of total_: opened ahead (warm), not yet ready
  std::deque<waiter> waiters_;
  asio::steady_timer deadlines_;
  std::chrono::steady_clock::time_point armed_for_ = std::chrono::steady_clock::time_point::max();
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // for the timer's handler
  struct answer_to {
    std::shared_ptr<pool_waiter> who;
    handover given;
  };
  std::vector<answer_to> answers_, delivering_;
  // The posted delivery's memory, and the pool while it lives (the handler holds both).
  struct delivery_state {
    explicit delivery_state(pool* p) : owner(p) {}
    handler_memory memory;
    pool* owner;
  };
  std::shared_ptr<delivery_state> delivery_ = std::make_shared<delivery_state>(this);
  bool delivery_posted_ = false;
  std::optional<param_map> server_params_;
  std::uint64_t connects_ = 0;
  std::uint64_t checkouts_ = 0;
  std::uint64_t wait_timeouts_ = 0;
  reported_sizes reported_;
};

}  // namespace meridian::proxy
