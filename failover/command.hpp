#pragma once
// Operator-configured commands (promote, repoint, fence hooks: `aws rds promote-read-replica …`
// and the like), run with /bin/sh -c without blocking the thread that awaits them: the output
// is read through a pipe on the executor, and a command past its timeout is killed with its
// whole process group.
#include <chrono>
#include <map>
#include <string>

#include <tl/expected.hpp>

#include "proxy/asio.hpp"

namespace meridian::failover {

namespace asio = proxy::asio;
using proxy::awaitable;

struct command_result {
  int exit_code = -1;
  std::string output;  // stdout and stderr together, the last 4 KiB
};

// Fails (with the output's tail) on a non-zero exit, a signal or the timeout.
awaitable<tl::expected<command_result, std::string>> run_command(asio::any_io_executor executor, std::string command,
                                                                 std::chrono::milliseconds timeout);

// Replaces each {name} in `text` by its value.
[[nodiscard]] std::string fill_placeholders(std::string text, const std::map<std::string, std::string>& values);

}  // namespace meridian::failover
