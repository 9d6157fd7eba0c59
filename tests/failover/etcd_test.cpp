// The etcd client and leader election against a real etcd server (Debian's etcd-server),
// started by the test on loopback.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <optional>
#include <filesystem>
#include <thread>

#include "failover/election.hpp"
#include "failover/etcd_client.hpp"
#include "await.hpp"

using namespace meridian::failover;
using namespace meridian::testing;
using namespace std::chrono_literals;


namespace {

// One etcd member on loopback, in a directory of its own, stopped when the object goes.
class etcd_server {
 public:
  etcd_server(int client_port, int peer_port) : port_(client_port) {
    dir_ = std::filesystem::temp_directory_path() / ("meridian-etcd-test-" + std::to_string(client_port));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    const std::string client = "http://127.0.0.1:" + std::to_string(client_port);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port);
    pid_ = fork();
    if (pid_ == 0) {
      const std::string log = (dir_ / "etcd.log").string();
      FILE* out = std::freopen(log.c_str(), "w", stdout);
      (void)out;
      dup2(STDOUT_FILENO, STDERR_FILENO);
      const std::string data = (dir_ / "data").string();
      const std::string cluster = "t=" + peer;
      execl("/usr/bin/etcd", "etcd", "--name", "t", "--data-dir", data.c_str(), "--listen-client-urls", client.c_str(),
            "--advertise-client-urls", client.c_str(), "--listen-peer-urls", peer.c_str(),
            "--initial-advertise-peer-urls", peer.c_str(), "--initial-cluster", cluster.c_str(), nullptr);
      _exit(127);
    }
  }
  ~etcd_server() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::filesystem::remove_all(dir_);
  }
  [[nodiscard]] std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int port_;
  pid_t pid_ = -1;
  std::filesystem::path dir_;
};

bool ready(asio::io_context& io, etcd_client& etcd) {
  return eventually(io, [&] { return await(io, etcd.get("/probe")).has_value(); }, 10s);
}

}  // namespace

TEST_CASE("etcd: keys and values, prefixes, transactions and leases", "[failover][etcd]") {
  etcd_server server(22379, 22380);
  asio::io_context io;
  // The first endpoint is dead: every request goes on to the next.
  etcd_client etcd(io.get_executor(), {"127.0.0.1:1", server.endpoint()}, 2s);
  REQUIRE(ready(io, etcd));

  const std::string binary("v\0\xff\n", 4);
  REQUIRE(await(io, etcd.put("/m/a", binary)));
  REQUIRE(await(io, etcd.put("/m/b", "2")));
  REQUIRE(await(io, etcd.put("/n/c", "3")));
  auto one = await(io, etcd.get("/m/a"));
  REQUIRE(one);
  REQUIRE(one->size() == 1);
  CHECK((*one)[0].value == binary);
  CHECK((*one)[0].version == 1);
  auto all = await(io, etcd.get("/m/", true));
  REQUIRE(all);
  CHECK(all->size() == 2);
  CHECK(await(io, etcd.get("/missing"))->empty());
  CHECK(*await(io, etcd.erase("/m/", true)) == 2);
  CHECK(await(io, etcd.get("/m/", true))->empty());

  // Create-if-absent: only the first succeeds, the second reads what is there.
  auto create = [&](const std::string& value) {
    return await(io, etcd.txn({{"/lock", etcd_compare::target::create_revision, 0, {}}},
                              {{etcd_op::kind::put, "/lock", value, 0, false}},
                              {{etcd_op::kind::get, "/lock", {}, 0, false}}));
  };
  auto first = create("one");
  REQUIRE(first);
  CHECK(first->succeeded);
  auto second = create("two");
  REQUIRE(second);
  CHECK_FALSE(second->succeeded);
  REQUIRE(second->ranges.size() == 1);
  REQUIRE(second->ranges[0].size() == 1);
  CHECK(second->ranges[0][0].value == "one");
  // Compare-and-swap on the modification revision.
  const auto rev = second->ranges[0][0].mod_revision;
  auto swap = [&](const std::string& value) {
    return await(io, etcd.txn({{"/lock", etcd_compare::target::mod_revision, rev, {}}},
                              {{etcd_op::kind::put, "/lock", value, 0, false}}, {}));
  };
  CHECK(swap("three")->succeeded);
  CHECK_FALSE(swap("four")->succeeded);
  CHECK(await(io, etcd.get("/lock"))->at(0).value == "three");

  // A key bound to a lease lives as long as the lease.
  auto lease = await(io, etcd.grant(5s));
  REQUIRE(lease);
  REQUIRE(await(io, etcd.put("/leased", "x", *lease)));
  CHECK(await(io, etcd.get("/leased"))->at(0).lease == *lease);
  auto ttl = await(io, etcd.keep_alive(*lease));
  REQUIRE(ttl);
  CHECK(*ttl > 0);
  REQUIRE(await(io, etcd.revoke(*lease)));
  CHECK(await(io, etcd.get("/leased"))->empty());
  CHECK(*await(io, etcd.keep_alive(*lease)) == 0);
}

TEST_CASE("etcd: a watch sees puts and deletes in order", "[failover][etcd]") {
  etcd_server server(22381, 22382);
  asio::io_context io;
  etcd_client etcd(io.get_executor(), {server.endpoint()}, 2s);
  etcd_client watcher(io.get_executor(), {server.endpoint()}, 2s);
  REQUIRE(ready(io, etcd));
  std::vector<std::string> seen;
  bool created = false;
  std::string why = "running";
  asio::co_spawn(io, watcher.watch("/w/", true, 0, [&](const std::vector<etcd_event>& events, std::int64_t) {
    created = true;
    for (const auto& e : events) seen.push_back((e.deleted ? "-" : "+") + e.kv.key + "=" + e.kv.value);
    return seen.size() < 3;
  }), [&](std::exception_ptr, std::string w) { why = std::move(w); });
  REQUIRE(eventually(io, [&] { return created; }, 5s));
  REQUIRE(await(io, etcd.put("/w/1", "a")));
  REQUIRE(await(io, etcd.put("/other", "b")));
  REQUIRE(await(io, etcd.put("/w/1", "c")));
  REQUIRE(await(io, etcd.erase("/w/1")));
  REQUIRE(eventually(io, [&] { return seen.size() >= 3 && why != "running"; }, 5s));
  CHECK(seen == std::vector<std::string>{"+/w/1=a", "+/w/1=c", "-/w/1="});
  CHECK(why.empty());  // ended because the handler said so
}

TEST_CASE("leader election hands over when the leader resigns or dies", "[failover][election]") {
  etcd_server server(22383, 22384);
  asio::io_context io;
  etcd_client a_etcd(io.get_executor(), {server.endpoint()}, 2s);
  etcd_client c_etcd(io.get_executor(), {server.endpoint()}, 2s);
  REQUIRE(ready(io, a_etcd));
  auto leader_key = [&] {
    auto kv = await(io, a_etcd.get("/e/leader"));
    return kv && !kv->empty() ? kv->at(0).value : std::string();
  };

  leader_election a(a_etcd, {"/e/leader", "a", 3s}, nullptr);
  asio::co_spawn(io, a.run(), asio::detached);
  REQUIRE(eventually(io, [&] { return a.leading(); }, 5s));

  // b runs on a thread of its own, which the test then stops dead: a crashed Meridian that
  // neither renews nor revokes its lease.
  asio::io_context b_io;
  etcd_client b_etcd(b_io.get_executor(), {server.endpoint()}, 2s);
  std::atomic<bool> b_leads{false};
  std::atomic<bool> b_saw_a{false};
  leader_election b(b_etcd, {"/e/leader", "b", 3s}, [&](bool leading, const std::string& leader) {
    b_leads = leading;
    if (leader == "a") b_saw_a = true;
  });
  asio::co_spawn(b_io, b.run(), asio::detached);
  auto work = asio::make_work_guard(b_io);
  std::thread b_thread([&] { b_io.run(); });
  struct joiner {
    asio::io_context& io;
    std::thread& t;
    ~joiner() {
      io.stop();
      if (t.joinable()) t.join();
    }
  } join_b{b_io, b_thread};

  CHECK(eventually(io, [&] { return b_saw_a.load(); }, 5s));
  CHECK_FALSE(b_leads);
  CHECK(leader_key() == "a");

  // A leader that resigns hands over at once.
  await(io, a.stop());
  CHECK(eventually(io, [&] { return b_leads.load(); }, 5s));
  CHECK(leader_key() == "b");

  leader_election c(c_etcd, {"/e/leader", "c", 3s}, nullptr);
  asio::co_spawn(io, c.run(), asio::detached);
  pump(io, 300ms);
  CHECK_FALSE(c.leading());
  // b dies: c leads once b's lease has expired (its TTL after the last renewal).
  b_io.stop();
  b_thread.join();
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(eventually(io, [&] { return c.leading(); }, 10s));
  CHECK(std::chrono::steady_clock::now() - t0 < 6s);
  CHECK(leader_key() == "c");
  // b, were it only frozen, would not take itself for the leader any more.
  CHECK_FALSE(b.leading());
  await(io, c.stop());
}
