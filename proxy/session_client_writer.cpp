// The client session: writing to the client, and ending its session with an error (see
// session_parts.hpp for how the session is split).
#include "proxy/session.hpp"
#include "proxy/session_parts.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "protocol/backend.hpp"
#include "protocol/codec.hpp"
#include "protocol/error.hpp"
#include "protocol/frontend.hpp"
#include "protocol/startup.hpp"
#include "proxy/client_auth.hpp"
#include "proxy/logging.hpp"
#include "proxy/params.hpp"
#include "proxy/pool.hpp"
#include "proxy/send_now.hpp"
#include "proxy/worker.hpp"
#include "routing/router.hpp"

namespace meridian::proxy {

using namespace session_parts;  // and its pr, fe_t, be_t, clock

namespace {

constexpr std::size_t backlog_limit = 1u << 20;  // client output queued behind a write in progress

std::string error_message(pr::severity sev, std::string_view code, std::string_view message) {
  std::string out;
  pr::append_error(out, sev, code, message);
  return out;
}

}  // namespace

awaitable<bool> session::write_client(const std::vector<asio::const_buffer>& buffers) {
  if (client_closed_) co_return false;
  if (writing_) {
    // Another write is in progress: queue behind it, preserving order, with a bound.
    for (const auto& b : buffers) backlog_.append(static_cast<const char*>(b.data()), b.size());
    while (!client_closed_ && writing_ && backlog_.size() > backlog_limit) {
      error_code ignored;
      if (!drained_) drained_ = std::make_unique<asio::steady_timer>(client_.get_executor(), clock::time_point::max());
      co_await drained_->async_wait(asio::redirect_error(use_awaitable, ignored));
    }
    co_return !client_closed_;
  }
  writing_ = true;
  error_code ec;
  if (tls_) {
    co_await asio::async_write(*tls_, buffers, asio::redirect_error(use_awaitable, ec));
  } else {
    co_await asio::async_write(client_, buffers, asio::redirect_error(use_awaitable, ec));
  }
  while (!ec && !backlog_.empty()) {
    std::swap(backlog_, inflight_);
    if (tls_) {
      co_await asio::async_write(*tls_, asio::buffer(inflight_), asio::redirect_error(use_awaitable, ec));
    } else {
      co_await asio::async_write(client_, asio::buffer(inflight_), asio::redirect_error(use_awaitable, ec));
    }
    inflight_.clear();
  }
  writing_ = false;
  if (drained_) drained_->cancel();
  if (ec) {
    close_client();
    co_return false;
  }
  co_return true;
}

session::quick_write session::write_client_now(std::vector<asio::const_buffer>& buffers) {
  if (client_closed_) return quick_write::closed;
  if (writing_ || tls_) return quick_write::wait;  // behind a write in progress; TLS goes through its stream
  error_code ec;
  switch (send_now(client_.native_handle(), buffers, ec)) {
    case send_status::done:
      return quick_write::done;
    case send_status::partial:
      return quick_write::wait;
    case send_status::failed:
      break;
  }
  spdlog::debug("[c{}] write to client failed: {}", id_, ec.message());
  close_client();
  return quick_write::closed;
}

awaitable<bool> session::write_client(const std::string& bytes) {
  std::vector<asio::const_buffer> one{asio::buffer(bytes)};
  const auto w = write_client_now(one);
  if (w != quick_write::wait) co_return w == quick_write::done;
  co_return co_await write_client(one);
}

awaitable<void> session::fatal(std::string_view sqlstate, std::string_view message) {
  if (client_closed_) co_return;
  auto msg = error_message(pr::severity::fatal, sqlstate, message);
  worker_.meter().errors.count(error_meter::origin::meridian, sqlstate);
  co_await write_client(msg);
  co_await close_client_gracefully();
}

}  // namespace meridian::proxy
