// The relay on loopback: an echo server behind it, clients from two "regions" told apart by
// their source address (127.0.0.1 is the echo server's own region, 127.0.0.2 is the far one).
#include "infra/local/relay/relay.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <future>
#include <thread>

using namespace meridian::relay;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

constexpr std::uint16_t echo_port = 22401;
constexpr std::uint16_t relay_port = 22402;

// An echo server on 127.0.0.1:echo_port, on its own thread.
class echo_server {
 public:
  echo_server() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), echo_port)) {
    asio::co_spawn(io_, accept(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }
  ~echo_server() {
    io_.stop();
    thread_.join();
  }

 private:
  awaitable<void> accept() {
    for (;;) {
      tcp::socket s(io_);
      co_await acceptor_.async_accept(s, meridian::proxy::use_awaitable);
      asio::co_spawn(io_, echo(std::move(s)), asio::detached);
    }
  }
  static awaitable<void> echo(tcp::socket s) {
    char buf[4096];
    for (;;) {
      meridian::proxy::error_code ec;
      std::size_t n = co_await s.async_read_some(asio::buffer(buf), asio::redirect_error(meridian::proxy::use_awaitable, ec));
      if (ec) co_return;
      co_await asio::async_write(s, asio::buffer(buf, n), asio::redirect_error(meridian::proxy::use_awaitable, ec));
      if (ec) co_return;
    }
  }
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
};

class relay_thread {
 public:
  explicit relay_thread(std::chrono::milliseconds one_way) : relay_(io_, make_config(one_way)) {
    relay_.start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~relay_thread() {
    asio::post(io_, [this] { relay_.stop(); });
    io_.stop();
    thread_.join();
  }
  std::string command(const std::string& line) {
    std::promise<std::string> reply;
    asio::post(io_, [&] { reply.set_value(relay_.command(line)); });
    return reply.get_future().get();
  }

 private:
  static relay_config make_config(std::chrono::milliseconds one_way) {
    relay_config c;
    c.regions = {"near", "far"};
    c.source_region["127.0.0.2"] = "far";
    c.delays.push_back({"near", "far", one_way});
    c.services.push_back({"near/echo", "near", {{"127.0.0.1", relay_port}}, {"127.0.0.1", echo_port}});
    return c;
  }
  asio::io_context io_;
  relay relay_;
  std::thread thread_;
};

// A blocking client socket from `source` to the relay.
struct client {
  explicit client(const char* source) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in from{};
    from.sin_family = AF_INET;
    ::inet_pton(AF_INET, source, &from.sin_addr);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(relay_port);
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0);
  }
  ~client() { ::close(fd); }
  void send(const std::string& s) const { REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size())); }
  // Up to `n` bytes, waiting at most `timeout`; "" when nothing came.
  std::string receive(std::size_t n, std::chrono::milliseconds timeout) const {
    std::string got;
    auto deadline = clock_type::now() + timeout;
    while (got.size() < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
      pollfd p{fd, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, static_cast<int>(left)) <= 0) break;
      char buf[4096];
      ssize_t r = ::read(fd, buf, std::min(sizeof buf, n - got.size()));
      if (r <= 0) break;
      got.append(buf, static_cast<std::size_t>(r));
    }
    return got;
  }
  int fd = -1;
};

std::chrono::milliseconds round_trip(const client& c, const std::string& payload) {
  auto start = clock_type::now();
  c.send(payload);
  REQUIRE(c.receive(payload.size(), 5s) == payload);
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start);
}

}  // namespace

TEST_CASE("relay delays traffic between regions and not inside one") {
  echo_server echo;
  relay_thread relay(60ms);
  client far("127.0.0.2");
  client near("127.0.0.1");
  round_trip(far, "warm");  // the connection's own trip to the server
  // Both ways through the relay: at least two one-way delays, and the near client none.
  CHECK(round_trip(far, "hello") >= 120ms);
  CHECK(round_trip(near, "hello") < 60ms);
  // Order and content survive a stream larger than one read.
  std::string big(300 * 1024, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  far.send(big);
  CHECK(far.receive(big.size(), 10s) == big);
  REQUIRE(relay.command("delay near far 0") == "ok");
  CHECK(round_trip(far, "fast") < 60ms);
}

TEST_CASE("a cut link holds traffic until it heals, and nothing is lost") {
  echo_server echo;
  relay_thread relay(0ms);
  client far("127.0.0.2");
  round_trip(far, "up");
  REQUIRE(relay.command("cut far near") == "ok");
  far.send("during the partition");
  CHECK(far.receive(1, 300ms).empty());
  client near("127.0.0.1");
  CHECK(round_trip(near, "local traffic flows") < 1s);
  // A connection opened during the partition waits as well.
  client late("127.0.0.2");
  late.send("late");
  CHECK(late.receive(1, 200ms).empty());
  REQUIRE(relay.command("heal") == "ok");
  CHECK(far.receive(20, 5s) == "during the partition");
  CHECK(late.receive(4, 5s) == "late");
  REQUIRE(relay.command("isolate near/echo") == "ok");
  far.send("x");
  CHECK(far.receive(1, 200ms).empty());
  REQUIRE(relay.command("heal near/echo") == "ok");
  CHECK(far.receive(1, 5s) == "x");
}

TEST_CASE("relay refuses bad commands and keeps serving") {
  echo_server echo;
  relay_thread relay(0ms);
  CHECK(relay.command("cut near mars").rfind("error: ", 0) == 0);
  CHECK(relay.command("cut near near").rfind("error: ", 0) == 0);
  client far("127.0.0.2");
  CHECK(round_trip(far, "still here") < 1s);
}
