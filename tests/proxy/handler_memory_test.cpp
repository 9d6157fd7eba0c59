// Operations allocated from the block of the object that keeps them pending (handler_memory):
// the read and the wait Meridian keeps pending per connection fit, a second operation at the
// same time goes to the heap, and an operation started from a completion reuses the block.
#include <catch2/catch.hpp>
#include <memory>

#include "proxy/asio.hpp"
#include "proxy/handler_memory.hpp"

using namespace meridian::proxy;
using stream = asio::local::stream_protocol::socket;

namespace {

// Owns its block, as a session or a server connection does; handlers hold it by shared_ptr.
struct owner {
  explicit owner(asio::io_context& io) : a(io), b(io) { asio::local::connect_pair(a, b); }
  handler_memory memory;
  stream a, b;
  char buffer[64] = {};
};

}  // namespace

TEST_CASE("a pending read sits in its owner's block and is completed from it", "[proxy][handler_memory]") {
  asio::io_context io;
  auto o = std::make_shared<owner>(io);
  std::size_t got = 0;
  bool second_done = false;
  // Shaped like server_connection::watch: the owner and a generation captured.
  o->a.async_read_some(asio::buffer(o->buffer), with_memory(o->memory, [o, generation = 7u, &got](error_code ec, std::size_t n) {
                         CHECK_FALSE(ec);
                         CHECK(generation == 7u);
                         got = n;
                       }));
  CHECK(o->memory.in_use());
  // A second operation while the block is taken: from the heap, and it completes all the same.
  o->b.async_wait(stream::wait_read, with_memory(o->memory, [o, &second_done](error_code ec) {
                    CHECK_FALSE(ec);
                    second_done = true;
                  }));
  asio::write(o->b, asio::buffer("ping", 4));
  asio::write(o->a, asio::buffer("pong", 4));
  io.run();
  CHECK(got == 4);
  CHECK(second_done);
  CHECK_FALSE(o->memory.in_use());
}

TEST_CASE("a wait started from a completion reuses the block it was freed from", "[proxy][handler_memory]") {
  asio::io_context io;
  auto o = std::make_shared<owner>(io);
  int rounds = 0;
  bool reused = false;
  // Shaped like session::wait_client: waits again from its own completion.
  std::function<void()> wait = [&] {
    o->a.async_wait(stream::wait_read, with_memory(o->memory, [o, &rounds, &reused, &wait](error_code ec) {
                      REQUIRE_FALSE(ec);
                      char c;
                      o->a.read_some(asio::buffer(&c, 1));
                      if (++rounds < 3) {
                        wait();
                        reused = reused || o->memory.in_use();
                        asio::write(o->b, asio::buffer("x", 1));
                      }
                    }));
  };
  wait();
  asio::write(o->b, asio::buffer("x", 1));
  io.run();
  CHECK(rounds == 3);
  CHECK(reused);
  CHECK_FALSE(o->memory.in_use());
}

TEST_CASE("a pending operation destroyed with its io_context frees the block before its owner goes",
          "[proxy][handler_memory]") {
  // The handler holds the last reference to the owner: freeing the block after the owner was
  // destroyed would write to freed memory (the sanitized build catches it).
  auto io = std::make_unique<asio::io_context>();
  std::weak_ptr<owner> seen;
  {
    auto o = std::make_shared<owner>(*io);
    seen = o;
    o->a.async_read_some(asio::buffer(o->buffer), with_memory(o->memory, [o](error_code, std::size_t) {}));
    CHECK(o->memory.in_use());
  }
  CHECK_FALSE(seen.expired());  // kept by the pending handler
  io.reset();
  CHECK(seen.expired());
}
