#pragma once
// Waiting for, and reading from, a plaintext socket without a system call when the socket is
// known to be empty.
//
// Asio 1.74's epoll reactor registers each socket once, edge-triggered, and keeps a flag per
// direction that says whether the socket may hold data: it is set by every readiness event and
// cleared only when an operation reports the socket "exhausted". Its own receive reports that
// only at end of stream, so every read started after data arrived first tries a `recv` that finds
// nothing; its readiness wait (`async_wait`) skips that try but re-arms the registration with an
// `epoll_ctl` every time. A proxy waits twice per statement (for the client, for the server), and
// these two calls were a third of Meridian's system calls per transaction.
//
// `quiet_read` is a reactor operation of Meridian's own that tells the reactor what it knows:
//   - as a read, it reports the socket exhausted whenever `recv` returned less than it asked
//     for (a TCP socket's receive queue was empty then; whatever arrives later raises a new
//     event, which sets the flag again);
//   - as a wait, it reports the socket exhausted as it completes, and its owner promises to
//     read right after until `recv` comes back short or with EAGAIN (`drained`), and not to wait
//     again before (while the last read filled its buffer, it reads again instead of waiting).
// The next operation on a socket known to be empty then goes straight to the reactor's queue,
// with neither a `recv` nor an `epoll_ctl`; a socket that may hold data is tried first, as Asio
// does. Asio's own operations on the same socket stay correct alongside: the flag is only
// cleared when the socket really was empty and nothing arrived since.
//
// The operation lives inside its owner (no allocation per wait) and holds the owner alive while
// it is pending, as an Asio handler capturing a shared_ptr would. It relies on Asio's detail
// layer, so it is tied to the Boost version Debian 12 ships (checked at compile time).
#include <cstddef>
#include <memory>

#include "proxy/asio.hpp"  // first: Asio's detail headers expect the whole of Asio before them

#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/version.hpp>

static_assert(BOOST_VERSION == 107400, "quiet_read uses Asio 1.74's reactor internals: review it for this Boost");
static_assert(std::is_same_v<boost::asio::detail::reactor, boost::asio::detail::epoll_reactor>,
              "quiet_read expects Asio's epoll reactor");

namespace meridian::proxy {

class quiet_read {
 public:
  // Called on completion with the owner handed to wait()/read(), the error (operation_aborted
  // when the socket was cancelled or closed, eof at end of stream) and the bytes read.
  using callback = void (*)(void* owner, error_code ec, std::size_t n);

  quiet_read() = default;
  quiet_read(const quiet_read&) = delete;
  quiet_read& operator=(const quiet_read&) = delete;

  // One operation at a time: while one is pending (a cancelled one included, until its
  // completion ran), wait() and read() start nothing and return false.

  // Completes when `socket` is readable (or closed, or broken). The owner reads right after.
  bool wait(tcp::socket& socket, std::shared_ptr<void> owner, callback done) {
    return start(socket, nullptr, 0, std::move(owner), done);
  }
  // Completes when something was read into [data, data + size) (size > 0).
  bool read(tcp::socket& socket, void* data, std::size_t size, std::shared_ptr<void> owner, callback done) {
    return start(socket, data, size, std::move(owner), done);
  }

  bool pending() const { return op_.owner != nullptr; }

 private:
  struct op : boost::asio::detail::reactor_op {
    op() : reactor_op(error_code(), &op::perform_io, &op::complete) {}
    static status perform_io(reactor_op* base);
    static void complete(void* scheduler, boost::asio::detail::scheduler_operation* base, const error_code&, std::size_t);

    int fd = -1;
    void* data = nullptr;  // nullptr: a wait
    std::size_t size = 0;
    std::shared_ptr<void> owner;  // set while pending
    callback on_done = nullptr;
  };

  bool start(tcp::socket& socket, void* data, std::size_t size, std::shared_ptr<void> owner, callback done);

  op op_;
  boost::asio::detail::epoll_reactor* reactor_ = nullptr;
};

}  // namespace meridian::proxy
