#include "support.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "protocol/backend.hpp"
#include "protocol/codec.hpp"
#include "protocol/framing.hpp"
#include "protocol/frontend.hpp"
#include "protocol/md5.hpp"
#include "protocol/scram.hpp"
#include "protocol/startup.hpp"

extern char** environ;

namespace meridian::testing {

namespace pr = meridian::protocol;

std::string sandbox::dsn(int region, const std::string& user, const std::string& password) {
  return "host=127.0.0.1 port=" + std::to_string(meridian_port(region)) + " user=" + user + " password=" + password +
         " dbname=app connect_timeout=10";
}
std::string sandbox::admin_dsn(int region) {
  return "host=" + dir() + "/run port=" + std::to_string(pg_port(region)) + " user=postgres dbname=app";
}

int sandbox::script(const std::string& args) { return script_output(args).exit_code; }

command_result sandbox::script_output(const std::string& args) {
  return run_command("MERIDIAN_SANDBOX_DIR=" + dir() + " MERIDIAN_PG_PORT=" + std::to_string(pg_port(0)) +
                       " MERIDIAN_PORT=" + std::to_string(meridian_port(0)) + " MERIDIAN_METRICS_PORT=" +
                       std::to_string(metrics_port(0)) + " MERIDIAN_ETCD_PORT=" + std::to_string(etcd_port(0)) +
                       " MERIDIAN_BUILD_DIR=" + build_dir() + " MERIDIAN_SKIP_BUILD=1 MERIDIAN_SKIP_DEPS=1 " + repo() +
                       "/infra/local/sandbox " + args);
}

pg_connection::pg_connection(const std::string& dsn) : conn_(PQconnectdb(dsn.c_str())) {}
pg_connection::~pg_connection() { PQfinish(conn_); }
bool pg_connection::ok() const { return PQstatus(conn_) == CONNECTION_OK; }
std::string pg_connection::error() const { return PQerrorMessage(conn_); }

std::optional<std::string> pg_connection::scalar(const std::string& sql) {
  PGresult* r = PQexec(conn_, sql.c_str());
  auto status = PQresultStatus(r);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    std::string msg = PQresultErrorMessage(r);
    PQclear(r);
    throw std::runtime_error("query failed: " + sql + ": " + msg + PQerrorMessage(conn_));
  }
  std::optional<std::string> out;
  if (status == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0 && !PQgetisnull(r, 0, 0))
    out = PQgetvalue(r, 0, 0);
  PQclear(r);
  return out;
}

std::string pg_connection::sqlstate_of(const std::string& sql) {
  PGresult* r = PQexec(conn_, sql.c_str());
  auto status = PQresultStatus(r);
  std::string code;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    const char* c = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    code = c ? c : "?????";
  }
  PQclear(r);
  return code;
}

command_result run_command(const std::string& command) {
  command_result result;
  std::string full = command + " 2>&1";
  FILE* p = popen(full.c_str(), "r");
  if (!p) return result;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) result.output.append(buf.data(), n);
  int status = pclose(p);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string primary_only_config(int port, const std::string& settings, const std::string& node_extra) {
  return "region: us-east-1\n"
         "listen: { host: 127.0.0.1, port: " + std::to_string(port) + " }\n"
         "nodes:\n"
         "  - { name: us-east-1, host: 127.0.0.1, port: " + std::to_string(sandbox::pg_port(0)) + ", role: primary" +
         node_extra + " }\n" + settings;
}

spawned_meridian::spawned_meridian(const std::string& name, const std::string& yaml, const std::vector<std::string>& prefix) {
  const std::string path = sandbox::dir() + "/" + name + ".yaml";
  std::ofstream(path) << yaml;
  std::vector<std::string> args = prefix;
  args.push_back(sandbox::meridian_binary());
  args.push_back("--config");
  args.push_back(path);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string& binary = args.front();  // a name is looked up on PATH
  // Its log beside its configuration, for tests that look for what it said.
  log_ = sandbox::dir() + "/" + name + ".log";
  const std::string& log = log_;
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&files, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, binary.c_str(), &files, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  if (spawned != 0) throw std::runtime_error("cannot start " + binary);
  pid_ = pid;
}

spawned_meridian::~spawned_meridian() {
  // SIGTERM first: a clean exit is where a sanitized build checks for leaks.
  if (pid_ > 0) kill(pid_, SIGTERM);
  if (!exited_within(std::chrono::seconds(15))) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  // A sanitized build: whatever it reported (UBSan on stderr, so in the log) fails the test.
  for (const char* marker : {"runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer"}) {
    INFO("sanitizer report in " << log_);
    CHECK_FALSE(file_contains(log_, marker));
  }
}

bool spawned_meridian::exited_within(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (pid_ > 0 && std::chrono::steady_clock::now() < deadline) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pid_ <= 0;
}

void spawned_meridian::signal(int sig) const {
  if (pid_ > 0) kill(pid_, sig);
}

void raise_descriptor_limit(std::size_t n) {
  rlimit l{};
  if (getrlimit(RLIMIT_NOFILE, &l) != 0 || l.rlim_cur >= n) return;
  l.rlim_cur = std::min<rlim_t>(n, l.rlim_max);
  setrlimit(RLIMIT_NOFILE, &l);
}

bool file_contains(const std::string& path, const std::string& text) {
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  return content.str().find(text) != std::string::npos;
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  // A condition that throws (a query on a connection the server just ended) is not met yet;
  // the last attempt's exception, if any, reaches the test.
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    try {
      if (condition()) return true;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

raw_client::raw_client(int port) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

raw_client::~raw_client() {
  if (fd_ >= 0) ::close(fd_);
}

bool raw_client::send(const std::string& bytes) {
  std::size_t off = 0;
  while (off < bytes.size()) {
    auto n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<std::size_t>(n);
  }
  return true;
}

std::string raw_client::receive(std::size_t n, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (pending_.size() < n) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char buf[8192];
    auto got = ::recv(fd_, buf, sizeof buf, 0);
    if (got <= 0) break;
    pending_.append(buf, static_cast<std::size_t>(got));
  }
  auto take = std::min(n, pending_.size());
  auto out = pending_.substr(0, take);
  pending_.erase(0, take);
  return out;
}

std::optional<std::pair<char, std::string>> raw_client::message(std::chrono::milliseconds timeout) {
  auto header = receive(5, timeout);
  if (header.size() < 5) return std::nullopt;
  auto len = pr::get_i32(header.data() + 1);
  if (len < 4) return std::nullopt;
  auto body = receive(static_cast<std::size_t>(len) - 4, timeout);
  if (body.size() != static_cast<std::size_t>(len) - 4) return std::nullopt;
  return std::make_pair(header[0], body);
}

bool raw_client::closed_by_server(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  pending_.clear();
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buf[4096];
    auto got = ::recv(fd_, buf, sizeof buf, 0);
    if (got == 0) return true;
    if (got < 0) return errno == ECONNRESET;
  }
}

std::string raw_client::login(const std::string& user, const std::string& password) {
  std::string out;
  pr::startup_message sm;
  sm.parameters = {{"user", user}, {"database", "app"}};
  pr::serialize(sm, out);
  if (!send(out)) return "?";
  std::optional<pr::scram_client> scram;
  for (;;) {
    auto m = message();
    if (!m) return "?";
    if (m->first == 'E') return error_code_of(m->second);
    if (m->first == 'Z') return "";
    if (m->first != 'R') continue;
    auto auth = pr::be::parse_authentication(m->second);
    if (!auth) return "?";
    out.clear();
    if (auth->code == pr::auth_code::sasl) {
      scram.emplace(password);
      pr::fe::serialize(pr::fe::sasl_initial_response{"SCRAM-SHA-256", scram->client_first()}, out);
    } else if (auth->code == pr::auth_code::sasl_continue) {
      auto f = scram->server_first(auth->payload);
      if (!f) return "?";
      pr::fe::serialize(pr::fe::sasl_response{*f}, out);
    } else if (auth->code == pr::auth_code::md5_password) {
      pr::fe::serialize(pr::fe::password_message{pr::md5_response(pr::md5_stored_secret(password, user), auth->payload)}, out);
    }
    if (!out.empty() && !send(out)) return "?";
  }
}

std::string http_get(int port, const std::string& path, const std::string& token) {
  raw_client c(port);
  if (!c.connected()) return "";
  const std::string auth = token.empty() ? "" : "Authorization: Bearer " + token + "\r\n";
  c.send("GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n" + auth + "\r\n");
  std::string response = c.receive(1 << 24, std::chrono::seconds(5));
  auto body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

double metric(const std::string& exposition, const std::string& name, const std::string& labels) {
  // A series without labels is written without braces, at the start of a line.
  const std::string key = labels.empty() ? "\n" + name + " " : name + "{" + labels + "} ";
  auto at = exposition.find(key);
  if (at == std::string::npos) return -1;
  return std::stod(exposition.substr(at + key.size()));
}

void cut_from_etcd_majority(const std::string& region, const std::string& a, const std::string& b) {
  for (const auto& c : {"net isolate " + region + "/etcd-peer", "net cut " + region + " " + a + "/etcd-peer",
                        "net cut " + region + " " + b + "/etcd-peer", "net cut " + region + " " + a + "/etcd",
                        "net cut " + region + " " + b + "/etcd"})
    REQUIRE(sandbox::script(c) == 0);
}

void check_pause_holds(int region, const std::function<bool()>& pause, const std::function<bool()>& resume) {
  pg_connection c(sandbox::dsn(region));
  REQUIRE(c.ok());
  REQUIRE(pause());
  struct resume_guard {
    const std::function<bool()>& resume;
    ~resume_guard() { (void)resume(); }
  } guard{resume};
  std::atomic<bool> done{false};
  std::string result;
  std::thread t([&] {
    result = c.scalar("SELECT 42").value_or("");
    done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // what is tested is that nothing happens meanwhile
  CHECK_FALSE(done);
  REQUIRE(resume());
  CHECK(eventually([&] { return done.load(); }, std::chrono::seconds(10)));
  t.join();
  CHECK(result == "42");
}

double node_gauge(int seen_from, const std::string& name, int node) {
  const std::string labels = std::string("node=\"") + region_name(node) + "\",region=\"" + region_name(node) + "\"";
  return metric(http_get(sandbox::metrics_port(seen_from), "/metrics"), name, labels);
}

std::string error_code_of(const std::string& body) {
  auto fields = pr::be::parse_error_fields(body);
  return fields ? std::string(fields->get('C')) : std::string();
}

}  // namespace meridian::testing
