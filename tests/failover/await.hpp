#pragma once
// Running Asio coroutines from plain test functions (GCC 12 mishandles temporaries inside
// co_await expressions, so the tests themselves are not coroutines).
#include <chrono>
#include <exception>
#include <functional>
#include <optional>

#include "proxy/asio.hpp"

namespace meridian::testing {

namespace asio = proxy::asio;
using namespace std::chrono_literals;

// Runs one operation to its end on `io` (other coroutines spawned there progress meanwhile).
// The tests are plain functions: GCC 12 mishandles temporaries inside co_await expressions.
template <class T>
inline T await(asio::io_context& io, asio::awaitable<T> op) {
  std::optional<T> result;
  std::exception_ptr failure;
  bool done = false;
  asio::co_spawn(io, std::move(op), [&](std::exception_ptr e, T v) {
    failure = e;
    if (!e) result.emplace(std::move(v));
    done = true;
  });
  io.restart();
  while (!done) io.run_one();
  if (failure) std::rethrow_exception(failure);
  return std::move(*result);
}

inline void await(asio::io_context& io, asio::awaitable<void> op) {
  std::exception_ptr failure;
  bool done = false;
  asio::co_spawn(io, std::move(op), [&](std::exception_ptr e) {
    failure = e;
    done = true;
  });
  io.restart();
  while (!done) io.run_one();
  if (failure) std::rethrow_exception(failure);
}

// Lets `io` run for a while: the passing of time is what some steps test (leases expiring).
inline void pump(asio::io_context& io, std::chrono::milliseconds d) {
  io.restart();
  io.run_for(d);
}

// Polls `condition`, running `io` in between, until it holds or `timeout` passes.
inline bool eventually(asio::io_context& io, const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    pump(io, 20ms);
  }
  return condition();
}


}  // namespace meridian::testing
