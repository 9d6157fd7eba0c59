// Receive buffers lent to the worker's stock while idle, and writes without waiting (send_now)
// against a real socket pair whose send buffer fills up.
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <numeric>
#include <string>

#include "proxy/byte_buffer.hpp"
#include "proxy/send_now.hpp"

using namespace meridian::proxy;

TEST_CASE("an empty receive buffer lends its storage to the stock and borrows it back", "[proxy][buffers]") {
  buffer_stock stock(4096, 2);
  byte_buffer b(0);
  CHECK(b.capacity() == 0);
  b.borrow(stock);
  CHECK(b.capacity() == 4096);
  std::memcpy(b.write_ptr(), "hello", 5);
  b.commit(5);
  CHECK_FALSE(b.lend(stock));  // bytes buffered: kept
  CHECK(stock.kept() == 0);
  b.consume(5);
  CHECK(b.lend(stock));
  CHECK(b.capacity() == 0);
  CHECK(stock.kept() == 1);
  b.borrow(stock);
  CHECK(stock.kept() == 0);
  CHECK(b.readable().empty());
}

TEST_CASE("the stock keeps a bounded number of standard buffers and frees grown ones", "[proxy][buffers]") {
  buffer_stock stock(4096, 2);
  std::vector<byte_buffer> buffers;
  for (int i = 0; i < 3; ++i) {
    buffers.emplace_back(0);
    buffers.back().borrow(stock);
  }
  for (auto& b : buffers) b.lend(stock);
  CHECK(stock.kept() == 2);  // the third was freed
  byte_buffer big(0);
  big.borrow(stock);
  big.reserve(100'000);  // a large message went through: the buffer grew
  CHECK(big.capacity() >= 100'000);
  CHECK(big.lend(stock));
  CHECK(stock.kept() == 1);  // not kept: only standard sizes are
  // An empty buffer with no storage asks for nothing until it reads.
  byte_buffer none(0);
  none.reserve(5);
  CHECK(none.capacity() == 0);
}

TEST_CASE("send_now writes what the socket takes and leaves the rest in the buffers", "[proxy][buffers]") {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
  int small = 4096;
  ::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
  // More than the socket pair can hold, in pieces of uneven sizes.
  std::string data(1 << 20, '\0');
  std::iota(data.begin(), data.end(), 0);
  std::vector<asio::const_buffer> buffers;
  for (std::size_t at = 0, piece = 1; at < data.size(); at += piece, piece = piece * 3 % 7919 + 1)
    buffers.emplace_back(data.data() + at, std::min(piece, data.size() - at));
  error_code ec;
  CHECK(send_now(fds[0], buffers, ec) == send_status::partial);
  CHECK_FALSE(ec);
  REQUIRE_FALSE(buffers.empty());
  // What is left is exactly the tail of the data, starting where the socket stopped taking it.
  std::size_t left = 0;
  for (const auto& b : buffers) left += b.size();
  const std::size_t sent = data.size() - left;
  CHECK(static_cast<const char*>(buffers.front().data()) == data.data() + sent);
  // The peer reads what was sent; the rest then goes out in further calls, in order.
  std::string received;
  char chunk[65536];
  for (;;) {
    auto status = send_now(fds[0], buffers, ec);
    REQUIRE_FALSE(ec);
    const auto n = ::recv(fds[1], chunk, sizeof chunk, MSG_DONTWAIT);
    if (n > 0) received.append(chunk, static_cast<std::size_t>(n));
    if (status == send_status::done && received.size() == data.size()) break;
    REQUIRE((status != send_status::done || n > 0));
  }
  CHECK(received == data);
  // A peer gone: the error is reported, not raised as SIGPIPE.
  ::close(fds[1]);
  std::vector<asio::const_buffer> more{asio::buffer(data.data(), 100)};
  CHECK(send_now(fds[0], more, ec) == send_status::failed);
  CHECK(ec);
  error_code ec2;
  CHECK(send_now(fds[0], data.data(), 100, ec2) == 0);
  CHECK(ec2);
  ::close(fds[0]);
}
