// quiet_read on real loopback TCP sockets: it reads and waits like Asio's own operations, wakes
// for data that arrived while nothing was pending, and skips the `recv` only when the socket is
// known to be empty. This binary counts every recv(2) the process makes (it defines `recv`,
// which takes precedence over the C library's, and forwards to the system call).
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>

#include "proxy/asio.hpp"
#include "proxy/quiet_read.hpp"

namespace {
std::atomic<int> recv_calls{0};
}

extern "C" ssize_t recv(int fd, void* buf, size_t len, int flags) {
  recv_calls.fetch_add(1, std::memory_order_relaxed);
  return ::syscall(SYS_recvfrom, fd, buf, len, flags, nullptr, nullptr);
}

using namespace meridian::proxy;
using namespace std::chrono_literals;

namespace {

// A connected pair on loopback: `ours` is read through quiet_read, `peer` writes.
struct pair_owner {
  explicit pair_owner(asio::io_context& io) : ours(io), peer(io) {
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    peer.connect(acceptor.local_endpoint());
    acceptor.accept(ours);
  }
  tcp::socket ours, peer;
  quiet_read op;
  char buffer[64] = {};
  int completions = 0;
  error_code last_ec;
  std::size_t last_n = 0;
};

void record(void* owner, error_code ec, std::size_t n) {
  auto* o = static_cast<pair_owner*>(owner);
  ++o->completions;
  o->last_ec = ec;
  o->last_n = n;
}

void send(tcp::socket& s, std::string_view text) { asio::write(s, asio::buffer(text.data(), text.size())); }

// Lets the loop take in the events that are there (run with work outstanding, or poll() would
// return without asking epoll), completing whatever is ready.
void spin(asio::io_context& io) {
  auto work = asio::make_work_guard(io);
  for (int i = 0; i < 3; ++i) {
    io.restart();
    io.poll();
  }
}

// Runs the loop until the owner saw `count` completions (or 5 s went by).
bool completed(asio::io_context& io, pair_owner& o, int count) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (o.completions < count && std::chrono::steady_clock::now() < until) {
    io.restart();
    io.run_one_for(100ms);
  }
  return o.completions >= count;
}

// A quiet read of `text`, short of the buffer: afterwards the socket is empty and known to be.
void read_until_empty(asio::io_context& io, const std::shared_ptr<pair_owner>& o, std::string_view text) {
  const int before = o->completions;
  o->op.read(o->ours, o->buffer, sizeof o->buffer, o, record);
  send(o->peer, text);
  REQUIRE(completed(io, *o, before + 1));
  REQUIRE(o->last_n == text.size());
}

}  // namespace

TEST_CASE("quiet_read reads what arrives, and the next read on an emptied socket makes no recv until data comes",
          "[proxy][quiet_read]") {
  asio::io_context io;
  auto o = std::make_shared<pair_owner>(io);
  o->op.read(o->ours, o->buffer, sizeof o->buffer, o, record);
  CHECK(o->op.pending());
  send(o->peer, "hello");
  REQUIRE(completed(io, *o, 1));
  CHECK_FALSE(o->last_ec);
  CHECK(o->last_n == 5);
  CHECK(std::string_view(o->buffer, 5) == "hello");
  CHECK_FALSE(o->op.pending());

  // 5 bytes into 64: the socket was left empty. Starting the next read costs no recv...
  const int before = recv_calls.load();
  o->op.read(o->ours, o->buffer, sizeof o->buffer, o, record);
  CHECK(recv_calls.load() == before);
  // ...and data arriving later still wakes it, read with exactly one recv.
  send(o->peer, "world!");
  REQUIRE(completed(io, *o, 2));
  CHECK(o->last_n == 6);
  CHECK(recv_calls.load() == before + 1);
}

TEST_CASE("quiet_read wakes for data that arrived while nothing was pending", "[proxy][quiet_read]") {
  asio::io_context io;
  auto o = std::make_shared<pair_owner>(io);
  read_until_empty(io, o, "one");
  // The socket is empty and known to be. Data comes, and the loop sees its event with no
  // operation pending (the event is spent): the next read must still find the data.
  send(o->peer, "two");
  spin(io);
  CHECK(o->completions == 1);
  o->op.read(o->ours, o->buffer, sizeof o->buffer, o, record);
  REQUIRE(completed(io, *o, 2));
  CHECK(o->last_n == 3);
  CHECK(std::string_view(o->buffer, 3) == "two");
}

TEST_CASE("quiet_read reads again at once when the last read filled its buffer", "[proxy][quiet_read]") {
  asio::io_context io;
  auto o = std::make_shared<pair_owner>(io);
  send(o->peer, "0123456789abcdef");
  spin(io);  // the loop sees the data's event before anything reads
  o->op.read(o->ours, o->buffer, 10, o, record);
  REQUIRE(completed(io, *o, 1));
  CHECK(o->last_n == 10);
  // More may be there (there is): no new event will come for it, so this read must try at once.
  o->op.read(o->ours, o->buffer, 10, o, record);
  REQUIRE(completed(io, *o, 2));
  CHECK(o->last_n == 6);
  CHECK(std::string_view(o->buffer, 6) == "abcdef");
}

TEST_CASE("a quiet wait completes when the socket is readable, and is queued once the owner emptied it",
          "[proxy][quiet_read]") {
  asio::io_context io;
  auto o = std::make_shared<pair_owner>(io);
  // The owner's side of the contract: after a wait, read until a short read or EAGAIN.
  auto read_all = [&] {
    const auto n = ::recv(o->ours.native_handle(), o->buffer, sizeof o->buffer, MSG_DONTWAIT);
    if (n < 0) {
      REQUIRE(errno == EAGAIN);
      return std::string();
    }
    REQUIRE(static_cast<std::size_t>(n) < sizeof o->buffer);
    return std::string(o->buffer, static_cast<std::size_t>(n));
  };
  auto still_waiting = [&](int completions) {
    spin(io);
    return o->completions == completions;
  };
  // A new socket may hold data: the first wait completes at once, and the owner finds nothing.
  o->op.wait(o->ours, o, record);
  REQUIRE(completed(io, *o, 1));
  CHECK(read_all().empty());

  // Known empty now: the wait is queued as it starts (had it been tried at once, it would
  // complete now and send the owner to a recv that finds nothing), with no epoll_ctl to re-arm.
  o->op.wait(o->ours, o, record);
  CHECK(still_waiting(1));
  send(o->peer, "ping");
  REQUIRE(completed(io, *o, 2));
  CHECK_FALSE(o->last_ec);
  CHECK(read_all() == "ping");

  o->op.wait(o->ours, o, record);
  CHECK(still_waiting(2));
  send(o->peer, "pong");
  REQUIRE(completed(io, *o, 3));
  CHECK(read_all() == "pong");
}

TEST_CASE("Asio's own read after a quiet read sees data that arrives later", "[proxy][quiet_read]") {
  asio::io_context io;
  auto o = std::make_shared<pair_owner>(io);
  read_until_empty(io, o, "a");
  // The socket is marked empty; a coroutine-style read through Asio takes over (as the
  // connection's internal queries do after stop_watching).
  std::size_t got = 0;
  o->ours.async_read_some(asio::buffer(o->buffer), [&](error_code ec, std::size_t n) {
    CHECK_FALSE(ec);
    got = n;
  });
  send(o->peer, "bc");
  io.restart();
  io.run_for(5s);
  CHECK(got == 2);
}

TEST_CASE("quiet_read reports end of stream, cancellation, and keeps its owner until it completes",
          "[proxy][quiet_read]") {
  SECTION("end of stream") {
    asio::io_context io;
    auto o = std::make_shared<pair_owner>(io);
    o->op.read(o->ours, o->buffer, sizeof o->buffer, o, record);
    o->peer.close();
    REQUIRE(completed(io, *o, 1));
    CHECK(o->last_ec == asio::error::eof);
  }
  SECTION("cancelled") {
    asio::io_context io;
    auto o = std::make_shared<pair_owner>(io);
    o->op.read(o->ours, o->buffer, sizeof o->buffer, o, record);  // nothing to read: pending
    o->ours.cancel();
    REQUIRE(completed(io, *o, 1));
    CHECK(o->last_ec == asio::error::operation_aborted);
  }
  SECTION("the owner lives while the operation is pending, and goes with its io_context") {
    std::weak_ptr<pair_owner> watched;
    {
      asio::io_context io;
      auto o = std::make_shared<pair_owner>(io);
      watched = o;
      o->op.read(o->ours, o->buffer, sizeof o->buffer, o, record);
      o.reset();
      CHECK_FALSE(watched.expired());  // held by its pending read
    }
    CHECK(watched.expired());  // released, not called, when the io_context went
  }
}

TEST_CASE("a second start while an operation is pending starts nothing", "[proxy][quiet_read]") {
  asio::io_context io;
  auto o = std::make_shared<pair_owner>(io);
  CHECK(o->op.read(o->ours, o->buffer, sizeof o->buffer, o, record));
  CHECK_FALSE(o->op.read(o->ours, o->buffer, sizeof o->buffer, o, record));
  CHECK_FALSE(o->op.wait(o->ours, o, record));
  // Cancelled but not completed yet: still pending.
  o->ours.cancel();
  CHECK(o->op.pending());
  CHECK_FALSE(o->op.wait(o->ours, o, record));
  REQUIRE(completed(io, *o, 1));
  spin(io);
  CHECK(o->completions == 1);
  CHECK(o->last_ec == asio::error::operation_aborted);
  // Completed: it can start again.
  CHECK(o->op.read(o->ours, o->buffer, sizeof o->buffer, o, record));
  send(o->peer, "again");
  REQUIRE(completed(io, *o, 2));
  CHECK(o->last_n == 5);
}
