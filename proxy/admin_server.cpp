#include "proxy/admin_server.hpp"

#include <openssl/crypto.h>

#include <chrono>
#include <future>
#include <memory>

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace meridian::proxy {

namespace beast = boost::beast;
namespace http = beast::http;

admin_server::admin_server(asio::io_context& io, std::string token, admin_handler handler)
    : io_(io), acceptor_(io), token_(std::move(token)), handler_(std::move(handler)) {}

void admin_server::listen(const std::string& host, std::uint16_t port) {
  tcp::endpoint ep(asio::ip::make_address(host), port);
  acceptor_.open(ep.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  acceptor_.bind(ep);
  acceptor_.listen();
  asio::co_spawn(io_, accept_loop(), asio::detached);
}

void admin_server::close() {
  // The acceptor belongs to its io_context's thread (the node monitor's): closed there, between
  // its handlers. Closed from another thread, it raced the accept loop re-arming its accept on
  // the closing descriptor (UBSan: null descriptor_state in async_accept, seen at a drain).
  auto done = std::make_shared<std::promise<void>>();
  auto closed = done->get_future();
  asio::post(io_, [this, done] {
    error_code ignored;
    acceptor_.close(ignored);
    done->set_value();
  });
  if (closed.wait_for(std::chrono::seconds(2)) == std::future_status::ready) return;
  // Its thread runs no more (the io_context was stopped): nothing else touches the acceptor.
  error_code ignored;
  acceptor_.close(ignored);
}

bool admin_server::authorized(std::string_view header) const {
  constexpr std::string_view scheme = "Bearer ";
  if (token_.empty() || header.substr(0, scheme.size()) != scheme) return false;
  auto given = header.substr(scheme.size());
  // Constant time, so the token cannot be guessed a byte at a time from response times.
  return given.size() == token_.size() && CRYPTO_memcmp(given.data(), token_.data(), token_.size()) == 0;
}

awaitable<void> admin_server::accept_loop() {
  for (;;) {
    error_code ec;
    auto socket = co_await acceptor_.async_accept(asio::redirect_error(use_awaitable, ec));
    if (ec) {
      if (!acceptor_.is_open()) co_return;
      continue;
    }
    asio::co_spawn(io_, serve_connection(std::move(socket)), asio::detached);
  }
}

awaitable<void> admin_server::serve_connection(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64 * 1024);
    stream.expires_after(std::chrono::seconds(30));
    error_code ec;
    co_await http::async_read(stream, buffer, parser, asio::redirect_error(use_awaitable, ec));
    if (ec) co_return;
    auto& req = parser.get();
    admin_request r;
    r.method = std::string(req.method_string());
    r.path = std::string(req.target().substr(0, req.target().find('?')));
    r.body = req.body();
    admin_response answer;
    if (r.path == "/healthz") {
      answer = {200, "{\"status\":\"ok\"}"};
    } else if (auto auth = req[http::field::authorization]; !authorized(std::string_view(auth.data(), auth.size()))) {
      answer = {401, "{\"error\":\"missing or wrong admin token\"}"};
      spdlog::warn("admin: refused an unauthenticated {} {}", r.method, r.path);
    } else {
      // The operation may take long (a promotion): no read deadline meanwhile.
      stream.expires_never();
      answer = co_await handler_(r);
    }
    http::response<http::string_body> res{static_cast<http::status>(answer.status), req.version()};
    res.set(http::field::content_type, "application/json");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(answer.body);
    res.prepare_payload();
    stream.expires_after(std::chrono::seconds(30));
    co_await http::async_write(stream, res, asio::redirect_error(use_awaitable, ec));
    if (ec || !res.keep_alive()) co_return;
  }
}

}  // namespace meridian::proxy
