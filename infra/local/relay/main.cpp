// meridian-relay: the simulated wide-area network of the local sandbox (see relay.hpp).
//
//   meridian-relay --config FILE            serve (until SIGTERM/SIGINT)
//   meridian-relay --control SOCKET WORDS   send one command to a running relay, print the reply
#include <spdlog/spdlog.h>

#include <iostream>
#include <string>

#include "infra/local/relay/relay.hpp"

namespace {

using namespace meridian::relay;

int send_command(const std::string& socket_path, const std::string& line) {
  asio::io_context io;
  asio::local::stream_protocol::socket s(io);
  boost::system::error_code ec;
  s.connect(asio::local::stream_protocol::endpoint(socket_path), ec);
  if (ec) {
    std::cerr << "meridian-relay: cannot reach the relay at " << socket_path << ": " << ec.message() << "\n";
    return 1;
  }
  std::string request = line + "\n";
  asio::write(s, asio::buffer(request), ec);
  std::string reply;
  asio::read(s, asio::dynamic_buffer(reply), ec);
  std::cout << reply;
  return reply.rfind("error", 0) == 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string usage = "usage: meridian-relay --config FILE | --control SOCKET COMMAND...";
  if (argc >= 3 && std::string(argv[1]) == "--control") {
    std::string line;
    for (int i = 3; i < argc; ++i) line += (i > 3 ? " " : "") + std::string(argv[i]);
    return send_command(argv[2], line);
  }
  if (argc != 3 || std::string(argv[1]) != "--config") {
    std::cerr << usage << "\n";
    return 2;
  }
  try {
    asio::io_context io;
    relay r(io, load_relay_config(argv[2]));
    asio::signal_set signals(io, SIGTERM, SIGINT);
    signals.async_wait([&](const boost::system::error_code&, int) {
      r.stop();
      io.stop();
    });
    r.start();
    spdlog::info("relay: serving");
    io.run();
  } catch (const std::exception& e) {
    std::cerr << "meridian-relay: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
