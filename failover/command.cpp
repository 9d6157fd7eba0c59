#include "failover/command.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>

#include <boost/asio/posix/stream_descriptor.hpp>

namespace meridian::failover {

using proxy::error_code;
using proxy::use_awaitable;

std::string fill_placeholders(std::string text, const std::map<std::string, std::string>& values) {
  for (const auto& [name, value] : values) {
    const std::string token = "{" + name + "}";
    for (auto at = text.find(token); at != std::string::npos; at = text.find(token, at + value.size()))
      text.replace(at, token.size(), value);
  }
  return text;
}

awaitable<tl::expected<command_result, std::string>> run_command(asio::any_io_executor executor, std::string command,
                                                                 std::chrono::milliseconds timeout) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) co_return tl::unexpected(std::string("cannot create a pipe"));
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    co_return tl::unexpected(std::string("cannot fork"));
  }
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    setpgid(0, 0);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    // Nothing else of Meridian's: a hook may start a long-lived daemon (the sandbox's rejoin
    // starts PostgreSQL), which must not hold Meridian's listening sockets or connections.
    close_range(3, ~0U, 0);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  asio::posix::stream_descriptor out(executor, fds[0]);
  asio::steady_timer timer(executor, timeout);
  // Shared with the timer's handler, which may run after this coroutine has moved on.
  struct race {
    bool timed_out = false;
    bool reaped = false;
  };
  auto state = std::make_shared<race>();
  timer.async_wait([state, pid](error_code ec) {
    if (ec || state->reaped) return;
    state->timed_out = true;
    kill(-pid, SIGKILL);  // the group: the shell and whatever it started
  });
  command_result result;
  char buf[4096];
  for (;;) {
    error_code ec;
    auto n = co_await out.async_read_some(asio::buffer(buf), asio::redirect_error(use_awaitable, ec));
    if (n > 0) {
      result.output.append(buf, n);
      if (result.output.size() > 4096) result.output.erase(0, result.output.size() - 4096);
    }
    if (ec) break;  // EOF: every writer (the command and its children) is gone
  }
  timer.cancel();
  int status = 0;
  waitpid(pid, &status, 0);
  state->reaped = true;
  const bool timed_out = state->timed_out;
  while (!result.output.empty() && (result.output.back() == '\n' || result.output.back() == ' ')) result.output.pop_back();
  if (timed_out) co_return tl::unexpected("timed out after " + std::to_string(timeout.count()) + " ms: " + result.output);
  if (WIFSIGNALED(status)) co_return tl::unexpected("killed by signal " + std::to_string(WTERMSIG(status)) + ": " + result.output);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (result.exit_code != 0)
    co_return tl::unexpected("exited with " + std::to_string(result.exit_code) + ": " + result.output);
  co_return result;
}

}  // namespace meridian::failover
