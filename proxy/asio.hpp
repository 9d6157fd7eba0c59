#pragma once
// The one way Meridian includes Asio. <utility> must precede Boost 1.74's Asio with GCC 12
// (otherwise std::exchange is used before it is declared in some coroutine headers).
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace meridian::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
template <class T>
using awaitable = asio::awaitable<T>;
using asio::use_awaitable;

}  // namespace meridian::proxy
