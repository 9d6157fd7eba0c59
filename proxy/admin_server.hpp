#pragma once
// The HTTP admin API that meridianctl talks to (Boost.Beast). Every path but /healthz needs
// `Authorization: Bearer <admin token>`; requests are small JSON, answered by a handler that
// runs on the server's executor (the coordinator's thread), one request per connection at a
// time, each with a deadline.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "proxy/asio.hpp"

namespace meridian::proxy {

struct admin_request {
  std::string method;  // GET, POST
  std::string path;    // without the query string
  std::string body;
};

struct admin_response {
  int status = 200;
  std::string body;
};

using admin_handler = std::function<awaitable<admin_response>(const admin_request&)>;

class admin_server {
 public:
  admin_server(asio::io_context& io, std::string token, admin_handler handler);
  // Binds (throws when it cannot) and starts accepting.
  void listen(const std::string& host, std::uint16_t port);
  // Stops accepting (on the acceptor's own thread; callable from any).
  void close();

 private:
  awaitable<void> accept_loop();
  awaitable<void> serve_connection(tcp::socket socket);
  [[nodiscard]] bool authorized(std::string_view header) const;

  asio::io_context& io_;
  tcp::acceptor acceptor_;
  std::string token_;
  admin_handler handler_;
};

}  // namespace meridian::proxy
