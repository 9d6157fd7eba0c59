#include "proxy/quiet_read.hpp"

#include <sys/socket.h>

#include <cerrno>

namespace meridian::proxy {

namespace {

namespace detail = boost::asio::detail;

// The socket's registration with the reactor sits in a protected member of basic_socket; a
// pointer to that member, taken through a derived class, reaches it without a cast.
struct socket_access : tcp::socket {
  static detail::epoll_reactor::per_descriptor_data& registration(tcp::socket& s) {
    return (s.*(&socket_access::impl_)).get_implementation().reactor_data_;
  }
};

}  // namespace

bool quiet_read::start(tcp::socket& socket, void* data, std::size_t size, std::shared_ptr<void> owner, callback done) {
  if (pending()) return false;  // the operation is in the reactor's or the scheduler's queue
  if (!reactor_) {
    reactor_ = &boost::asio::use_service<detail::epoll_reactor>(
        boost::asio::query(socket.get_executor(), boost::asio::execution::context));
  }
  op_.ec_ = error_code();
  op_.bytes_transferred_ = 0;
  op_.fd = socket.native_handle();
  op_.data = data;
  op_.size = size;
  op_.owner = std::move(owner);
  op_.on_done = done;
  // Speculation allowed: the reactor tries the operation now only if the socket may hold data.
  reactor_->start_op(detail::epoll_reactor::read_op, op_.fd, socket_access::registration(socket), &op_,
                     /*is_continuation=*/true, /*allow_speculative=*/true);
  return true;
}

detail::reactor_op::status quiet_read::op::perform_io(reactor_op* base) {
  auto* o = static_cast<op*>(base);
  if (!o->data) return done_and_exhausted;  // a wait: its owner reads until the socket is empty
  for (;;) {
    const auto n = ::recv(o->fd, o->data, o->size, MSG_DONTWAIT);
    if (n > 0) {
      o->bytes_transferred_ = static_cast<std::size_t>(n);
      return static_cast<std::size_t>(n) < o->size ? done_and_exhausted : done;
    }
    if (n == 0) {
      o->ec_ = boost::asio::error::eof;
      return done_and_exhausted;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
    o->ec_ = error_code(errno, boost::asio::error::get_system_category());
    return done;
  }
}

void quiet_read::op::complete(void* scheduler, detail::scheduler_operation* base, const error_code&, std::size_t) {
  auto* o = static_cast<op*>(base);
  // The owner may go with the last reference (and this operation with it): take it first.
  auto owner = std::move(o->owner);
  if (!scheduler) return;  // destroyed with its io_context: released, not called
  o->on_done(owner.get(), o->ec_, o->bytes_transferred_);
}

}  // namespace meridian::proxy
