#pragma once
// A client of etcd's v3 API through its JSON gateway (HTTP/1.1 with Boost.Beast): key-value
// reads and writes, transactions, leases and watches, over a small pool of keep-alive
// connections, trying the next endpoint when one fails. Keys and values are raw bytes here;
// the gateway's base64 and string-encoded integers stay inside this file's implementation.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "proxy/asio.hpp"

namespace meridian::failover {

namespace asio = proxy::asio;
using proxy::awaitable;

struct etcd_kv {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t version = 0;
  std::int64_t lease = 0;
};

// One condition of a transaction: the key's value, version or revisions compared for equality
// (a create revision of 0 means the key does not exist).
struct etcd_compare {
  enum class target { value, version, create_revision, mod_revision };
  std::string key;
  target what = target::create_revision;
  std::int64_t number = 0;  // for version and revisions
  std::string value;        // for value
};

struct etcd_op {
  enum class kind { put, get, erase };
  kind what = kind::get;
  std::string key;
  std::string value;       // put
  std::int64_t lease = 0;  // put
  bool prefix = false;     // get, erase: every key starting with `key`
};

struct etcd_txn_result {
  bool succeeded = false;
  std::int64_t revision = 0;
  std::vector<std::vector<etcd_kv>> ranges;  // what each get of the branch taken returned
};

struct etcd_event {
  bool deleted = false;  // else a put
  etcd_kv kv;
};

template <class T>
using etcd_result = tl::expected<T, std::string>;

class etcd_client {
 public:
  using clock = std::chrono::steady_clock;

  // Endpoints as host:port; each request tries them in turn, starting with the last that
  // answered. `timeout` bounds one request (connect, send, answer).
  etcd_client(asio::any_io_executor executor, std::vector<std::string> endpoints,
              std::chrono::milliseconds timeout = std::chrono::seconds(2));
  ~etcd_client();
  etcd_client(const etcd_client&) = delete;
  etcd_client& operator=(const etcd_client&) = delete;

  awaitable<etcd_result<std::vector<etcd_kv>>> get(std::string key, bool prefix = false);
  awaitable<etcd_result<std::int64_t>> put(std::string key, std::string value, std::int64_t lease = 0);
  awaitable<etcd_result<std::int64_t>> erase(std::string key, bool prefix = false);
  awaitable<etcd_result<etcd_txn_result>> txn(std::vector<etcd_compare> compares, std::vector<etcd_op> success,
                                              std::vector<etcd_op> failure);

  // A lease of `ttl`; its id. keep_alive renews it and returns the TTL left (0: it is gone).
  awaitable<etcd_result<std::int64_t>> grant(std::chrono::seconds ttl);
  awaitable<etcd_result<std::int64_t>> keep_alive(std::int64_t lease);
  awaitable<etcd_result<void>> revoke(std::int64_t lease);

  // Watches a key (or every key with that prefix) from `from_revision` (0: from now), calling
  // `on_events` for each batch, until the handler returns false, the connection fails or the
  // watch is cancelled with the executor's cancellation. Returns why it ended.
  awaitable<std::string> watch(std::string key, bool prefix, std::int64_t from_revision,
                               std::function<bool(const std::vector<etcd_event>&, std::int64_t revision)> on_events);

  // Closes idle connections and makes running requests fail.
  void close();

 private:
  struct connection;
  awaitable<etcd_result<std::string>> call(const char* path, const std::string& body);
  awaitable<etcd_result<std::unique_ptr<connection>>> connect(std::size_t endpoint, clock::time_point deadline);

  asio::any_io_executor executor_;
  std::vector<std::string> endpoints_;
  std::chrono::milliseconds timeout_;
  std::size_t preferred_ = 0;
  std::vector<std::unique_ptr<connection>> idle_;
};

// The end of the range of keys starting with `prefix` (etcd's range_end for a prefix).
[[nodiscard]] std::string prefix_end(std::string prefix);

}  // namespace meridian::failover
