#pragma once
// Helpers for integration tests against the real sandbox (infra/local/sandbox), started by the
// CTest fixture with the ports given in the environment.
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace meridian::testing {

struct command_result {
  int exit_code = -1;
  std::string output;
};

// Ports and addresses of the sandbox the fixture started.
struct sandbox {
  static int pg_port(int region);        // 0 us-east-1, 1 eu-west-1, 2 ap-southeast-1
  static int meridian_port(int region);  // same numbering
  static int metrics_port(int region);
  static int etcd_port(int region);
  static std::string dir();
  static std::string repo();
  static std::string build_dir();           // this build's tree (the sandbox script's MERIDIAN_BUILD_DIR)
  static std::string meridian_binary();     // the meridian this build made
  static std::string meridianctl_binary();
  static std::string dsn(int region, const std::string& user = "app", const std::string& password = "app-secret");
  // Superuser connection straight to a PostgreSQL node over its Unix socket.
  static std::string admin_dsn(int region);
  // Runs infra/local/sandbox with this sandbox's settings, e.g. "stop-node eu-west-1".
  static int script(const std::string& args);
  static command_result script_output(const std::string& args);
  static int admin_port(int region) { return meridian_port(0) + 48 + region; }
};

// A libpq connection that fails the test on errors unless asked not to.
class pg_connection {
 public:
  explicit pg_connection(const std::string& dsn);
  ~pg_connection();
  pg_connection(const pg_connection&) = delete;
  pg_connection& operator=(const pg_connection&) = delete;

  [[nodiscard]] bool ok() const;
  [[nodiscard]] std::string error() const;
  // First column of the first row, or nullopt; throws with the server's message on error.
  std::optional<std::string> scalar(const std::string& sql);
  // Runs sql and returns the SQLSTATE of its error ("" on success).
  std::string sqlstate_of(const std::string& sql);
  [[nodiscard]] PGconn* raw() const { return conn_; }

 private:
  PGconn* conn_;
};

command_result run_command(const std::string& command);

// The configuration of a Meridian of a test's own: listening on 127.0.0.1:`port` in front of
// the sandbox's primary alone (`node_extra` appended to its node entry), then `settings`.
std::string primary_only_config(int port, const std::string& settings, const std::string& node_extra = "");

// A Meridian of a test's own (the binary under test), from a configuration written to the
// sandbox's directory; killed when the test ends.
class spawned_meridian {
 public:
  // `prefix` runs before the binary, e.g. {"ip", "netns", "exec", NAME} (it must exec it, so
  // that signals reach Meridian).
  spawned_meridian(const std::string& name, const std::string& yaml, const std::vector<std::string>& prefix = {});
  ~spawned_meridian();
  spawned_meridian(const spawned_meridian&) = delete;
  spawned_meridian& operator=(const spawned_meridian&) = delete;

  // SIGHUP, SIGTERM, ... to the process.
  void signal(int sig) const;
  // Whether the process ended (and was reaped) within `timeout`.
  bool exited_within(std::chrono::milliseconds timeout);

 private:
  int pid_ = -1;
  std::string log_;  // its stdout and stderr
};

// Raises this process's soft limit on open descriptors to at least `n` (up to the hard limit).
void raise_descriptor_limit(std::size_t n);

// Whether the file at `path` contains `text` (false when it cannot be read).
bool file_contains(const std::string& path, const std::string& text);

// Polls `condition` until it holds or `timeout` passes; returns whether it held. Exceptions
// count as "not yet", except from the last attempt.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// A blocking client socket speaking raw bytes, for inputs no driver would send.
class raw_client {
 public:
  explicit raw_client(int port);
  ~raw_client();
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  [[nodiscard]] bool connected() const { return fd_ >= 0; }
  bool send(const std::string& bytes);
  // Reads until `n` bytes arrived, EOF or timeout; returns what arrived.
  std::string receive(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Reads one typed message; nullopt on EOF/timeout.
  std::optional<std::pair<char, std::string>> message(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // True when the server closed the connection (EOF) within the timeout.
  bool closed_by_server(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Logs in (SCRAM or md5, as asked) and reads up to ReadyForQuery. Returns "" on success, the
  // SQLSTATE of the ErrorResponse on refusal, "?" when the connection broke.
  std::string login(const std::string& user = "app", const std::string& password = "app-secret");

 private:
  int fd_ = -1;
  std::string pending_;
};

// The sandbox's regions by number, as the port helpers count them.
constexpr int us = 0;
constexpr int eu = 1;
constexpr int ap = 2;
inline const char* region_name(int region) {
  constexpr const char* names[] = {"us-east-1", "eu-west-1", "ap-southeast-1"};
  return names[region];
}
inline std::string pg_port_str(int region) { return std::to_string(sandbox::pg_port(region)); }
// A per-node gauge (node and region labels) as the Meridian of `seen_from` publishes it.
double node_gauge(int seen_from, const std::string& name, int node);

// PAUSE as an operator gives it: `pause` holds new transactions (in every region), so a
// statement sent through `region`'s Meridian after it does not run (for 500 ms, the test's
// window); once `resume` returns it runs, without error. Each action returns whether it worked;
// `resume` also runs however the check ends.
void check_pause_holds(int region, const std::function<bool()>& pause, const std::function<bool()>& resume);

// Threads told to stop through `stop`, joined however the test ends (a failed REQUIRE unwinds
// through here).
struct joined_threads {
  std::atomic<bool>& stop;
  std::vector<std::thread> threads;
  void join() {
    stop = true;
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }
  ~joined_threads() { join(); }
};

// Cuts `region` off from the etcd majority and nothing else: its member from the other members
// (both ways) and its Meridian from the other members' client ports (`a` and `b`, the other
// regions). Inside a region nothing is cut, so its Meridian still reaches its own member, which
// has no quorum.
void cut_from_etcd_majority(const std::string& region, const std::string& a, const std::string& b);

// Heals the sandbox's network however the test ends.
struct healed_after {
  ~healed_after() { sandbox::script("net heal"); }
};

// GET http://127.0.0.1:port/path; the body, or "" on failure.
std::string http_get(int port, const std::string& path, const std::string& token = {});
// The value of one Prometheus sample, e.g. meridian_statements_total with labels
// class="read",node="eu-west-1" (in the exposition's order; none for a series without); -1 when absent.
double metric(const std::string& exposition, const std::string& name, const std::string& labels);

// The SQLSTATE in an ErrorResponse body.
std::string error_code_of(const std::string& error_body);

}  // namespace meridian::testing
