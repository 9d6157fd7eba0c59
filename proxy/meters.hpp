#pragma once
// What the data path counts, per worker thread. Each value has one writer (its worker) and is
// read by whoever scrapes: a relaxed load and store, no read-modify-write and no lock, so a
// count costs what an ordinary increment does. The metrics collector sums the workers' values
// when /metrics is scraped (see metrics.hpp).
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <vector>

namespace meridian::proxy {

// A number one thread changes and any thread may read.
class relaxed_value {
 public:
  void add(std::int64_t d) { v_.store(v_.load(std::memory_order_relaxed) + d, std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t get() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

// Latencies in fixed buckets (seconds: 0.5 ms … 10 s), as a Prometheus histogram.
class latency_histogram {
 public:
  static constexpr std::array<double, 14> bounds{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                 0.1,    0.25,  0.5,    1.0,   2.5,  5.0,   10.0};
  void observe(std::chrono::nanoseconds d) {
    static constexpr auto limits = [] {
      std::array<std::int64_t, bounds.size()> l{};
      for (std::size_t i = 0; i < bounds.size(); ++i) l[i] = static_cast<std::int64_t>(bounds[i] * 1e9);
      return l;
    }();
    const auto ns = d.count();
    std::size_t i = 0;
    while (i < limits.size() && ns > limits[i]) ++i;
    counts_[i].add(1);
    sum_ns_.add(ns);
  }
  // Observations per bucket (not cumulative; the last is above every bound) and their sum.
  [[nodiscard]] std::int64_t count_in(std::size_t bucket) const { return counts_[bucket].get(); }
  [[nodiscard]] std::int64_t sum_ns() const { return sum_ns_.get(); }

 private:
  std::array<relaxed_value, bounds.size() + 1> counts_;
  relaxed_value sum_ns_;
};

// One worker's pools to one node, summed over users and databases.
struct pool_meter {
  relaxed_value used;      // server connections checked out or connecting
  relaxed_value idle;      // server connections ready in the pool
  relaxed_value waiting;   // clients waiting for a connection
  relaxed_value capacity;  // the pools' maximum sizes
  latency_histogram wait;  // how long each checkout took (0 when a connection was idle)
};

// Errors sent to clients, by origin and SQLSTATE class (the first two characters).
class error_meter {
 public:
  enum class origin { server = 0, meridian = 1 };
  void count(origin o, std::string_view sqlstate) {
    if (sqlstate.size() < 2) return;
    const int a = digit(sqlstate[0]), b = digit(sqlstate[1]);
    if (a < 0 || b < 0) return;
    counts_[static_cast<std::size_t>(o) * classes + static_cast<std::size_t>(a * 36 + b)].add(1);
  }
  static constexpr std::size_t classes = 36 * 36;
  [[nodiscard]] std::int64_t get(origin o, std::size_t cls) const {
    return counts_[static_cast<std::size_t>(o) * classes + cls].get();
  }
  // The two characters of class number `cls`.
  [[nodiscard]] static std::string_view class_name(std::size_t cls, char (&out)[3]) {
    constexpr std::string_view alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    out[0] = alphabet[cls / 36];
    out[1] = alphabet[cls % 36];
    out[2] = 0;
    return {out, 2};
  }

 private:
  static int digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
    return -1;
  }
  std::array<relaxed_value, 2 * classes> counts_;
};

// Everything one worker thread counts. Per-node vectors are sized once at start.
struct worker_meter {
  explicit worker_meter(std::size_t nodes)
      : pools(nodes), queries(nodes), transactions(nodes), statements(2 * nodes), reads_routed(nodes) {}
  // A statement forwarded to `node`, by what it may do (read: it may run on a replica).
  void statement(std::size_t node, bool read) {
    if (node * 2 + 1 < statements.size()) statements[statement_slot(node, read)].add(1);
  }
  [[nodiscard]] static std::size_t statement_slot(std::size_t node, bool read) { return node * 2 + (read ? 0 : 1); }
  // A transaction that could read from a replica was sent to `node` (a replica, or the
  // primary when none could serve it).
  void read_routed(std::size_t node) {
    if (node < reads_routed.size()) reads_routed[node].add(1);
  }
  std::vector<pool_meter> pools;                // [node]
  std::vector<latency_histogram> queries;       // [node]: a batch sent until its ReadyForQuery
  std::vector<latency_histogram> transactions;  // [node]: first statement until idle again
  error_meter errors;
  relaxed_value cache_hits, cache_misses;  // statement classification
  std::vector<relaxed_value> statements;   // [statement_slot(node, read)]
  std::vector<relaxed_value> reads_routed; // [node]
  // Clients holding work for a failover now, how the holds ended, and how long the served waited.
  relaxed_value held, held_served, held_refused;
  latency_histogram held_wait;
  // Reads in flight on a server connection that was lost, run again elsewhere.
  relaxed_value reads_retried;
};

}  // namespace meridian::proxy
