#pragma once
// One libpq connection driven without blocking: libpq's non-blocking API, its socket awaited
// on an Asio executor. For the node monitor's probes (and later failover's commands), never
// for client traffic. Every call takes a deadline; a call that misses it closes the connection.
#include <libpq-fe.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <tl/expected.hpp>

#include "proxy/asio.hpp"

namespace meridian::failover {

namespace asio = proxy::asio;
using proxy::awaitable;

using pg_row = std::vector<std::optional<std::string>>;
using pg_rows = std::vector<pg_row>;

class pg_client {
 public:
  using clock = std::chrono::steady_clock;
  using keywords = std::vector<std::pair<std::string, std::string>>;

  explicit pg_client(asio::any_io_executor executor);
  ~pg_client();
  pg_client(const pg_client&) = delete;
  pg_client& operator=(const pg_client&) = delete;

  // Connects with libpq keywords (host, port, user, …). The host name is resolved
  // asynchronously first and passed as hostaddr, since libpq would resolve it blocking.
  awaitable<tl::expected<void, std::string>> connect(keywords params, clock::time_point deadline);
  // Runs one statement (several, separated by ';', return the last one's rows). A view, not a
  // string: callers may pass literals straight into co_await (GCC 12 mishandles temporaries
  // with destructors there).
  awaitable<tl::expected<pg_rows, std::string>> query(std::string_view sql, clock::time_point deadline);

  [[nodiscard]] bool connected() const { return conn_ != nullptr; }
  void close();

 private:
  enum class direction { read, write };
  // Waits until the connection's socket is ready; false on deadline or error.
  awaitable<bool> wait(direction d, clock::time_point deadline);
  [[nodiscard]] std::string error_message(const char* fallback) const;

  asio::any_io_executor executor_;
  PGconn* conn_ = nullptr;
  asio::posix::stream_descriptor socket_;
  asio::steady_timer timer_;
  std::uint64_t wait_generation_ = 0;
};

}  // namespace meridian::failover
