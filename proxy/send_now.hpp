#pragma once
// Writing to a plaintext socket without waiting. Protocol messages nearly always fit in the
// socket's send buffer, so a non-blocking sendmsg usually takes everything at once: no
// asynchronous operation, no trip through the scheduler, no coroutine suspended. What the socket
// does not take is left for an asynchronous write.
#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <vector>

#include "proxy/asio.hpp"

namespace meridian::proxy {

enum class send_status {
  done,     // everything was written
  partial,  // the socket is full: `buffers` now holds what is left
  failed,   // the connection is broken (the error is in ec)
};

// One contiguous buffer: how much went out (all of it unless the socket filled up
// or the connection broke; see ec).
inline std::size_t send_now(int fd, const char* data, std::size_t size, error_code& ec) {
  std::size_t sent = 0;
  while (sent < size) {
    const auto n = ::send(fd, data + sent, size - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) ec = error_code(errno, asio::error::get_system_category());
      break;
    }
    sent += static_cast<std::size_t>(n);
  }
  return sent;
}

// Sends `buffers` on `fd` as far as the socket takes them now; trims `buffers` to what is left.
inline send_status send_now(int fd, std::vector<asio::const_buffer>& buffers, error_code& ec) {
  if (buffers.size() == 1) {
    // The usual answer is one run of the server's bytes: send(), which the kernel takes with
    // less work than sendmsg() (no message header or vector to copy in).
    auto& b = buffers.front();
    const auto sent = send_now(fd, static_cast<const char*>(b.data()), b.size(), ec);
    if (ec) return send_status::failed;
    if (sent == b.size()) {
      buffers.clear();
      return send_status::done;
    }
    b += sent;
    return send_status::partial;
  }
  std::size_t first = 0;  // buffers before this one went out whole
  while (first < buffers.size()) {
    std::array<iovec, 64> iov;  // only the first `count` are filled (and read): not zeroed
    std::size_t count = 0;
    for (std::size_t i = first; i < buffers.size() && count < iov.size(); ++i) {
      if (buffers[i].size() == 0) continue;
      iov[count].iov_base = const_cast<void*>(buffers[i].data());
      iov[count].iov_len = buffers[i].size();
      ++count;
    }
    if (count == 0) break;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    const auto n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      ec = error_code(errno, asio::error::get_system_category());
      return send_status::failed;
    }
    auto left = static_cast<std::size_t>(n);
    while (first < buffers.size() && left >= buffers[first].size()) {
      left -= buffers[first].size();
      ++first;
    }
    if (left > 0) {
      buffers[first] += left;  // part of this buffer went out
      break;                   // the socket took less than offered: it is full
    }
  }
  while (first < buffers.size() && buffers[first].size() == 0) ++first;  // empty ones left: done too
  buffers.erase(buffers.begin(), buffers.begin() + static_cast<std::ptrdiff_t>(first));
  return buffers.empty() ? send_status::done : send_status::partial;
}

}  // namespace meridian::proxy
