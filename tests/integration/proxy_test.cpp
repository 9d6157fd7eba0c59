// The core proxy against the real sandbox: three PostgreSQL nodes and three Meridians.
#include <catch2/catch.hpp>

#include <atomic>
#include <regex>
#include <set>
#include <thread>
#include <vector>

#include "protocol/frontend.hpp"
#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {

std::string pgbench(int region, const std::string& args) {
  return "PGPASSWORD=app-secret /usr/lib/postgresql/15/bin/pgbench -n -h 127.0.0.1 -p " +
         std::to_string(sandbox::meridian_port(region)) + " -U app " + args + " app";
}

// Server connections that served clients named `application_name` (Meridian brings each server
// connection to its client's application_name, and the other regions' Meridians have pools of
// their own to the primary).
int backends_on_primary(const std::string& application_name) {
  pg_connection admin(sandbox::admin_dsn(0));
  REQUIRE(admin.ok());
  return std::stoi(*admin.scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" +
                                 application_name + "' AND backend_type = 'client backend'"));
}
}  // namespace

TEST_CASE("psql works through every region's Meridian", "[integration]") {
  for (int r = 0; r < 3; ++r) {
    INFO(region_name(r));
    auto out = run_command("/usr/lib/postgresql/15/bin/psql -X '" + sandbox::dsn(r) + "' -tAc 'SELECT 40 + 2'");
    CHECK(out.exit_code == 0);
    CHECK(out.output == "42\n");
  }
}

TEST_CASE("pgbench runs with 0 failed transactions in every query mode", "[integration][pgbench]") {
  for (std::string mode : {"simple", "extended", "prepared"}) {
    for (std::string script : {"-S", ""}) {
      INFO("mode " << mode << " script " << (script.empty() ? "tpcb" : "select-only"));
      // 24 clients over a pool of 10 server connections: transaction pooling must share them.
      // With -M prepared, pgbench (15) prepares each statement with a blocking PQprepare on
      // first use: a thread blocked waiting for a pooled connection stalls its other clients,
      // which hold connections in open transactions, so every client gets its own thread.
      const std::string threads = mode == "prepared" ? "-j 24" : "-j 2";
      auto out = run_command(pgbench(0, "-c 24 " + threads + " -t 150 -M " + mode + " " + script));
      INFO(out.output);
      REQUIRE(out.exit_code == 0);
      CHECK_THAT(out.output, Catch::Contains("number of transactions actually processed: 3600/3600"));
      CHECK_THAT(out.output, Catch::Contains("number of failed transactions: 0"));
    }
  }
}

TEST_CASE("transaction pooling shares server connections between clients", "[integration][pool]") {
  constexpr int clients = 30;  // the sandbox's pool holds 10 server connections
  std::vector<std::unique_ptr<pg_connection>> conns;
  for (int i = 0; i < clients; ++i) {
    conns.push_back(std::make_unique<pg_connection>(sandbox::dsn(0) + " application_name=itest-pool"));
    REQUIRE(conns.back()->ok());
  }
  std::mutex m;
  std::set<std::string> pids;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&, i] {
      try {
        for (int k = 0; k < 5; ++k) {
          auto pid = conns[static_cast<std::size_t>(i)]->scalar("SELECT pg_backend_pid() FROM pg_sleep(0.02)");
          std::lock_guard g(m);
          pids.insert(*pid);
        }
      } catch (const std::exception&) {
        ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(pids.size() <= 10);
  CHECK(pids.size() >= 2);  // they did run concurrently on several server connections
  // Thirty clients stay connected, yet the primary sees at most the pool's connections.
  const int backends = backends_on_primary("itest-pool");
  CHECK(backends <= 10);
  CHECK(backends >= 2);
}

TEST_CASE("cancel of a running query through Meridian", "[integration][cancel]") {
  pg_connection c(sandbox::dsn(1));
  REQUIRE(c.ok());
  REQUIRE(PQsendQuery(c.raw(), "SELECT pg_sleep(60)") == 1);
  pg_connection admin(sandbox::admin_dsn(0));
  REQUIRE(eventually([&] {
    return admin.scalar("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'") == "1";
  }, 10s));
  PGcancel* cancel = PQgetCancel(c.raw());
  char err[256];
  auto started = std::chrono::steady_clock::now();
  REQUIRE(PQcancel(cancel, err, sizeof err) == 1);
  PQfreeCancel(cancel);
  PGresult* r = PQgetResult(c.raw());
  auto waited = std::chrono::steady_clock::now() - started;
  REQUIRE(PQresultStatus(r) == PGRES_FATAL_ERROR);
  CHECK(std::string(PQresultErrorField(r, PG_DIAG_SQLSTATE)) == "57014");
  PQclear(r);
  while ((r = PQgetResult(c.raw())) != nullptr) PQclear(r);
  CHECK(waited < 30s);
  // The session is still usable.
  CHECK(c.scalar("SELECT 1") == "1");
}

TEST_CASE("a cancel request with a wrong key cancels nothing", "[integration][cancel]") {
  pg_connection c(sandbox::dsn(0));
  REQUIRE(c.ok());
  REQUIRE(PQsendQuery(c.raw(), "SELECT pg_sleep(1.5), 'done'") == 1);
  raw_client bogus(sandbox::meridian_port(0));
  std::string packet(16, '\0');
  packet[3] = 16;
  packet[4] = 0x04; packet[5] = static_cast<char>(0xd2); packet[6] = 0x16; packet[7] = 0x2e;  // 80877102
  packet[11] = 1;
  packet[15] = 2;
  REQUIRE(bogus.send(packet));
  CHECK(bogus.closed_by_server());
  PGresult* r = PQgetResult(c.raw());
  CHECK(PQresultStatus(r) == PGRES_TUPLES_OK);
  PQclear(r);
  while ((r = PQgetResult(c.raw())) != nullptr) PQclear(r);
}

TEST_CASE("SCRAM and md5 logins, and a wrong password", "[integration][auth]") {
  pg_connection scram(sandbox::dsn(0, "app", "app-secret"));
  CHECK(scram.ok());
  pg_connection md5(sandbox::dsn(0, "legacy", "legacy-secret"));
  CHECK(md5.ok());
  CHECK(md5.scalar("SELECT current_user") == "legacy");
  pg_connection wrong(sandbox::dsn(0, "app", "not-the-password"));
  CHECK_FALSE(wrong.ok());
  CHECK_THAT(wrong.error(), Catch::Contains("password authentication failed for user \"app\""));

  raw_client raw_scram(sandbox::meridian_port(0));
  CHECK(raw_scram.login("app", "wrong") == "28P01");
  raw_client raw_md5(sandbox::meridian_port(0));
  CHECK(raw_md5.login("legacy", "wrong") == "28P01");
  raw_client unknown(sandbox::meridian_port(0));
  CHECK(unknown.login("nobody", "x") == "28P01");
  raw_client good(sandbox::meridian_port(0));
  CHECK(good.login("legacy", "legacy-secret").empty());
}

TEST_CASE("killing a server backend mid-query fails only that client's query", "[integration][failure]") {
  pg_connection victim(sandbox::dsn(0));
  pg_connection bystander(sandbox::dsn(0));
  REQUIRE(victim.ok());
  REQUIRE(bystander.ok());
  REQUIRE(PQsendQuery(victim.raw(), "SELECT pg_sleep(60), 'victim'") == 1);
  pg_connection admin(sandbox::admin_dsn(0));
  std::string pid;
  REQUIRE(eventually([&] {
    auto p = admin.scalar("SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60), ''victim''' AND state = 'active'");
    if (p) pid = *p;
    return p.has_value();
  }, 10s));
  CHECK(admin.scalar("SELECT pg_terminate_backend(" + pid + ")") == "t");
  PGresult* r = PQgetResult(victim.raw());
  CHECK(PQresultStatus(r) == PGRES_FATAL_ERROR);
  // pg_sleep is volatile: as far as Meridian knows the statement may have written, so its
  // outcome is unknown.
  CHECK(std::string(PQresultErrorField(r, PG_DIAG_SQLSTATE)) == "08007");
  PQclear(r);
  while ((r = PQgetResult(victim.raw())) != nullptr) PQclear(r);
  // The victim's connection goes on (its session is Meridian's), and so does everyone else.
  CHECK(victim.scalar("SELECT 3") == "3");
  CHECK(bystander.scalar("SELECT 1") == "1");
  pg_connection fresh(sandbox::dsn(0));
  REQUIRE(fresh.ok());
  CHECK(fresh.scalar("SELECT 2") == "2");
}

namespace {

// Terminates the backend on `node` whose query contains `marker`, once it is there.
void terminate_backend_running(int node, const std::string& marker) {
  pg_connection admin(sandbox::admin_dsn(node));
  REQUIRE(admin.ok());
  std::string pid;
  REQUIRE(eventually([&] {
    auto p = admin.scalar("SELECT pid FROM pg_stat_activity WHERE query LIKE '%" + marker +
                          "%' AND pid <> pg_backend_pid() AND backend_type = 'client backend'");
    if (p) pid = *p;
    return p.has_value();
  }, 10s));
  REQUIRE(admin.scalar("SELECT pg_terminate_backend(" + pid + ")") == "t");
}

// What the client reads up to its next ReadyForQuery: the SQLSTATE of each ErrorResponse, the
// tag of each CommandComplete, then "Z" and the status. Empty when the connection ended first.
std::vector<std::string> answers_until_ready(raw_client& c) {
  std::vector<std::string> seen;
  while (auto m = c.message()) {
    if (m->first == 'E') seen.push_back(error_code_of(m->second));
    if (m->first == 'C') seen.push_back(m->second.substr(0, m->second.find('\0')));
    if (m->first == 'Z') {
      seen.push_back(std::string("Z") + m->second.substr(0, 1));
      return seen;
    }
  }
  return {};
}
std::vector<std::string> answer_of(raw_client& c, const std::string& sql) {
  std::string out;
  meridian::protocol::fe::serialize(meridian::protocol::fe::query{sql}, out);
  if (!c.send(out)) return {};
  return answers_until_ready(c);
}

std::string answer_types(raw_client& c);

// The table the lost-work and name-in-use tests write to.
void make_itest_lost() {
  pg_connection setup(sandbox::admin_dsn(us));
  REQUIRE(setup.ok());
  setup.scalar("CREATE TABLE IF NOT EXISTS itest_lost (name text)");
  setup.scalar("GRANT ALL ON itest_lost TO app");
}

// Terminates the backend, on whichever node, whose query contains `marker`, once it is there.
void terminate_backend_anywhere(const std::string& marker) {
  REQUIRE(eventually([&] {
    for (int node : {us, eu, ap}) {
      pg_connection admin(sandbox::admin_dsn(node));
      auto p = admin.scalar("SELECT pid FROM pg_stat_activity WHERE query LIKE '%" + marker +
                            "%' AND pid <> pg_backend_pid() AND backend_type = 'client backend'");
      if (p) return admin.scalar("SELECT pg_terminate_backend(" + *p + ")") == "t";
    }
    return false;
  }, 10s));
}

// Meridian of `region` shows a client in a transaction whose server was lost (the tests run one
// at a time: it is the test's own).
bool shown_lost(int region) {
  pg_connection console("host=127.0.0.1 port=" + std::to_string(sandbox::meridian_port(region)) +
                        " user=operator password=operator-secret dbname=meridian connect_timeout=10");
  PGresult* r = PQexec(console.raw(), "SHOW CLIENTS");
  bool seen = false;
  const int state = PQfnumber(r, "state");
  for (int i = 0; state >= 0 && i < PQntuples(r); ++i)
    seen = seen || std::string(PQgetvalue(r, i, state)) == "in transaction (server lost)";
  PQclear(r);
  return seen;
}

// What libpq reports, over TLS, of a session its server ends while it is idle in a transaction
// (idle_in_transaction_session_timeout): the server's FATAL (a notice to libpq: the client is
// idle) and the end of the connection.
std::string ended_over_tls(const std::string& dsn) {
  pg_connection c(dsn + " sslmode=require");
  REQUIRE(c.ok());
  std::string notices;
  PQsetNoticeProcessor(
      c.raw(), [](void* arg, const char* m) { *static_cast<std::string*>(arg) += m; }, &notices);
  PQclear(PQexec(c.raw(), "SET idle_in_transaction_session_timeout = '300ms'"));
  PGresult* r = PQexec(c.raw(), "BEGIN");
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  CHECK(eventually([&] { return PQconsumeInput(c.raw()) == 0; }, 10s));
  return notices + PQerrorMessage(c.raw());
}

}  // namespace

TEST_CASE("a TLS client whose server ends its session is told so as PostgreSQL tells it, in every region",
          "[integration][failure][tls]") {
  for (int region : {us, eu}) {
    INFO(region_name(region));
    const auto direct = ended_over_tls("host=127.0.0.1 port=" + pg_port_str(region) +
                                       " user=app password=app-secret dbname=app connect_timeout=10");
    const auto through = ended_over_tls(sandbox::dsn(region));
    // The server's FATAL, then TLS closed as PostgreSQL closes it (close_notify): libpq says the
    // same both ways ("SSL connection has been closed unexpectedly", not "SSL SYSCALL error").
    CHECK_THAT(through, Catch::Contains("SSL connection has been closed unexpectedly"));
    CHECK(through == direct);
  }
}

TEST_CASE("a terminated backend fails its client's work once, and the client's connection goes on, in every region",
          "[integration][failure][lost_work]") {
  make_itest_lost();
  pg_connection admin(sandbox::admin_dsn(us));
  for (int region : {us, eu}) {
    INFO(region_name(region));
    const std::string tag = std::string("itest_lost_") + (region == us ? "us" : "eu");
    {
      // A read whose answer had begun to reach the client: it cannot run again unseen, 57P01
      // (nothing of it remains), then the connection runs the next statement.
      raw_client c(sandbox::meridian_port(region));
      REQUIRE(c.login().empty());
      std::string out;
      meridian::protocol::fe::serialize(
          meridian::protocol::fe::query{"SELECT repeat('x', 1000) FROM generate_series(1, 100) UNION ALL "
                                        "SELECT count(*) || '" + tag + "_a' FROM generate_series(1, 100000000000)"},
          out);
      REQUIRE(c.send(out));
      bool rows = false;
      for (auto m = c.message(); m && !rows; m = c.message()) rows = m->first == 'D';
      REQUIRE(rows);
      terminate_backend_anywhere(tag + "_a");
      CHECK(answers_until_ready(c) == std::vector<std::string>{"57P01", "ZI"});
      CHECK(answer_of(c, "SELECT 1") == std::vector<std::string>{"SELECT 1", "ZI"});
    }
    {
      // A read of which nothing reached the client runs again elsewhere, unseen: held by the
      // primary's ACCESS EXCLUSIVE lock (on the primary, and replayed on the replicas) wherever
      // it runs, its backend terminated, then the lock released: the client gets its row and
      // no error.
      const auto retried_before =
          metric(http_get(sandbox::metrics_port(region), "/metrics"), "meridian_reads_retried_total", "");
      pg_connection holder(sandbox::admin_dsn(us));
      REQUIRE(holder.ok());
      REQUIRE(holder.sqlstate_of("BEGIN").empty());
      REQUIRE(holder.sqlstate_of("LOCK TABLE itest_lost IN ACCESS EXCLUSIVE MODE").empty());
      // The lock's WAL record goes out with the next flush: a commit elsewhere brings it.
      REQUIRE(pg_connection(sandbox::admin_dsn(us)).scalar("SELECT txid_current() > 0") == "t");
      for (int node : {eu, ap}) {
        pg_connection replica(sandbox::admin_dsn(node));
        REQUIRE(eventually([&] {
          return replica.scalar("SELECT count(*) FROM pg_locks WHERE relation = 'itest_lost'::regclass AND "
                                "mode = 'AccessExclusiveLock'") == "1";
        }, 10s));
      }
      raw_client c(sandbox::meridian_port(region));
      REQUIRE(c.login().empty());
      std::string out;
      meridian::protocol::fe::serialize(
          meridian::protocol::fe::query{"SELECT count(*), '" + tag + "_r' FROM itest_lost"}, out);
      REQUIRE(c.send(out));
      terminate_backend_anywhere(tag + "_r");
      // The same through the extended protocol, under a statement name the batch gives: run
      // again, its Parse is not refused as a name in use.
      raw_client x(sandbox::meridian_port(region));
      REQUIRE(x.login().empty());
      out.clear();
      namespace fe = meridian::protocol::fe;
      fe::serialize(fe::parse{"s_r", "SELECT count(*), '" + tag + "_x' FROM itest_lost", {}}, out);
      fe::serialize(fe::bind{"", "s_r", std::string_view("\0\0\0\0\0\0", 6)}, out);
      fe::serialize(fe::execute{"", 0}, out);
      fe::serialize_empty('S', out);
      REQUIRE(x.send(out));
      terminate_backend_anywhere(tag + "_x");
      // Both run again (and wait for the lock again) before the lock goes.
      REQUIRE(eventually([&] {
        return metric(http_get(sandbox::metrics_port(region), "/metrics"), "meridian_reads_retried_total", "") >=
               retried_before + 2;
      }, 10s));
      REQUIRE(holder.sqlstate_of("COMMIT").empty());
      CHECK(answers_until_ready(c) == std::vector<std::string>{"SELECT 1", "ZI"});
      CHECK(answer_types(x) == "1 2 D:0 C Z:I");
    }
    {
      // A write in autocommit with no answer: its outcome is unknown, 08007.
      raw_client c(sandbox::meridian_port(region));
      REQUIRE(c.login().empty());
      std::string out;
      meridian::protocol::fe::serialize(
          meridian::protocol::fe::query{"INSERT INTO itest_lost SELECT '" + tag + "_w' FROM pg_sleep(60)"}, out);
      REQUIRE(c.send(out));
      terminate_backend_running(us, tag + "_w");
      CHECK(answers_until_ready(c) == std::vector<std::string>{"08007", "ZI"});
      CHECK(answer_of(c, "SELECT 1") == std::vector<std::string>{"SELECT 1", "ZI"});
    }
    {
      // Idle in a transaction (on the primary): the client is told at its next statement, once,
      // and the block is failed until it ends it, as after any error.
      raw_client c(sandbox::meridian_port(region));
      REQUIRE(c.login().empty());
      CHECK(answer_of(c, "BEGIN; INSERT INTO itest_lost VALUES ('" + tag + "_b')") ==
            std::vector<std::string>{"BEGIN", "INSERT 0 1", "ZT"});
      terminate_backend_running(us, tag + "_b");
      REQUIRE(eventually([&] { return shown_lost(region); }, 10s));
      CHECK(answer_of(c, "SELECT 1") == std::vector<std::string>{"57P01", "ZE"});
      CHECK(answer_of(c, "SELECT 2") == std::vector<std::string>{"25P02", "ZE"});
      CHECK(answer_of(c, "ROLLBACK") == std::vector<std::string>{"ROLLBACK", "ZI"});
      CHECK(answer_of(c, "SELECT 3") == std::vector<std::string>{"SELECT 1", "ZI"});
      CHECK(admin.scalar("SELECT count(*) FROM itest_lost WHERE name = '" + tag + "_b'") == "0");
    }
    {
      // Its COMMIT, after the loss: the block is known not to have committed.
      raw_client c(sandbox::meridian_port(region));
      REQUIRE(c.login().empty());
      CHECK(answer_of(c, "BEGIN; INSERT INTO itest_lost VALUES ('" + tag + "_c')") ==
            std::vector<std::string>{"BEGIN", "INSERT 0 1", "ZT"});
      terminate_backend_running(us, tag + "_c");
      // Sent once Meridian has seen the loss (sent before, it would be in flight: 08007).
      REQUIRE(eventually([&] { return shown_lost(region); }, 10s));
      CHECK(answer_of(c, "COMMIT") == std::vector<std::string>{"57P01", "ZI"});
      CHECK(answer_of(c, "SELECT 4") == std::vector<std::string>{"SELECT 1", "ZI"});
      CHECK(admin.scalar("SELECT count(*) FROM itest_lost WHERE name = '" + tag + "_c'") == "0");
    }
  }
}

TEST_CASE("server parameters are presented consistently and follow the client", "[integration][params]") {
  pg_connection a(sandbox::dsn(1) + " application_name=itest-a");
  pg_connection b(sandbox::dsn(1) + " application_name=itest-b");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(std::string(PQparameterStatus(a.raw(), "in_hot_standby")) == "off");
  CHECK(std::string(PQparameterStatus(a.raw(), "application_name")) == "itest-a");
  CHECK_FALSE(std::string(PQparameterStatus(a.raw(), "server_version")).empty());
  for (int i = 0; i < 5; ++i) {
    // Both clients share the same few server connections; each sees its own setting.
    CHECK(a.scalar("SHOW application_name") == "itest-a");
    CHECK(b.scalar("SHOW application_name") == "itest-b");
  }
  a.scalar("SET application_name = 'itest-a2'");
  CHECK(std::string(PQparameterStatus(a.raw(), "application_name")) == "itest-a2");
  CHECK(a.scalar("SHOW application_name") == "itest-a2");
  CHECK(b.scalar("SHOW application_name") == "itest-b");
  pg_connection c(sandbox::dsn(1));
  REQUIRE(c.ok());
  CHECK(c.scalar("SHOW application_name") == "");
}

TEST_CASE("named prepared statements of different clients never collide", "[integration][prepared]") {
  pg_connection a(sandbox::dsn(0));
  pg_connection b(sandbox::dsn(0));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto prepare = [](pg_connection& c, const char* sql) {
    PGresult* r = PQprepare(c.raw(), "s1", sql, 0, nullptr);
    REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK);
    PQclear(r);
  };
  auto exec = [](pg_connection& c) {
    PGresult* r = PQexecPrepared(c.raw(), "s1", 0, nullptr, nullptr, nullptr, 0);
    REQUIRE(PQresultStatus(r) == PGRES_TUPLES_OK);
    std::string v = PQgetvalue(r, 0, 0);
    PQclear(r);
    return v;
  };
  prepare(a, "SELECT 'from a'");
  prepare(b, "SELECT 'from b'");
  for (int i = 0; i < 50; ++i) {
    CHECK(exec(a) == "from a");
    CHECK(exec(b) == "from b");
  }
  // A statement that was never prepared fails as PostgreSQL fails it.
  PGresult* r = PQexecPrepared(a.raw(), "nope", 0, nullptr, nullptr, nullptr, 0);
  CHECK(std::string(PQresultErrorField(r, PG_DIAG_SQLSTATE)) == "26000");
  PQclear(r);
  CHECK(exec(a) == "from a");
  // DEALLOCATE ALL drops them, on the server and in Meridian alike.
  a.scalar("DEALLOCATE ALL");
  r = PQexecPrepared(a.raw(), "s1", 0, nullptr, nullptr, nullptr, 0);
  CHECK(std::string(PQresultErrorField(r, PG_DIAG_SQLSTATE)) == "26000");
  PQclear(r);
  CHECK(exec(b) == "from b");
}

TEST_CASE("transactions stay on one server connection and errors inside them behave", "[integration][tx]") {
  pg_connection c(sandbox::dsn(0));
  REQUIRE(c.ok());
  c.scalar("CREATE TABLE IF NOT EXISTS itest_tx (id int primary key, v text)");
  c.scalar("TRUNCATE itest_tx");
  c.scalar("BEGIN");
  auto pid = c.scalar("SELECT pg_backend_pid()");
  c.scalar("INSERT INTO itest_tx VALUES (1, 'a')");
  CHECK(c.sqlstate_of("INSERT INTO itest_tx VALUES (1, 'dup')") == "23505");
  CHECK(PQtransactionStatus(c.raw()) == PQTRANS_INERROR);
  CHECK(c.sqlstate_of("SELECT 1") == "25P02");
  c.scalar("ROLLBACK");
  CHECK(PQtransactionStatus(c.raw()) == PQTRANS_IDLE);
  CHECK(c.scalar("SELECT count(*) FROM itest_tx") == "0");
  c.scalar("BEGIN");
  auto pid1 = c.scalar("SELECT pg_backend_pid()");
  for (int i = 0; i < 10; ++i) CHECK(c.scalar("SELECT pg_backend_pid()") == pid1);
  c.scalar("INSERT INTO itest_tx VALUES (2, 'b')");
  c.scalar("COMMIT");
  CHECK(c.scalar("SELECT v FROM itest_tx WHERE id = 2") == "b");
  (void)pid;
}

TEST_CASE("COPY in and out through Meridian", "[integration][copy]") {
  pg_connection c(sandbox::dsn(0));
  REQUIRE(c.ok());
  c.scalar("CREATE TABLE IF NOT EXISTS itest_copy (id int, v text)");
  c.scalar("TRUNCATE itest_copy");
  PGresult* r = PQexec(c.raw(), "COPY itest_copy FROM STDIN");
  REQUIRE(PQresultStatus(r) == PGRES_COPY_IN);
  PQclear(r);
  std::string rows;
  for (int i = 0; i < 20000; ++i) rows += std::to_string(i) + "\trow " + std::to_string(i) + "\n";
  REQUIRE(PQputCopyData(c.raw(), rows.data(), static_cast<int>(rows.size())) == 1);
  REQUIRE(PQputCopyEnd(c.raw(), nullptr) == 1);
  r = PQgetResult(c.raw());
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  while ((r = PQgetResult(c.raw())) != nullptr) PQclear(r);
  CHECK(c.scalar("SELECT count(*) FROM itest_copy") == "20000");

  r = PQexec(c.raw(), "COPY itest_copy TO STDOUT");
  REQUIRE(PQresultStatus(r) == PGRES_COPY_OUT);
  PQclear(r);
  std::size_t bytes = 0;
  char* buf = nullptr;
  int n;
  while ((n = PQgetCopyData(c.raw(), &buf, 0)) > 0) {
    bytes += static_cast<std::size_t>(n);
    PQfreemem(buf);
  }
  CHECK(bytes == rows.size());
  r = PQgetResult(c.raw());
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  while ((r = PQgetResult(c.raw())) != nullptr) PQclear(r);
}

TEST_CASE("large rows stream through without breaking framing", "[integration][large]") {
  pg_connection c(sandbox::dsn(0));
  REQUIRE(c.ok());
  // 8 MiB in one DataRow, then an ordinary query on the same session.
  CHECK(c.scalar("SELECT length(repeat('x', 8 * 1024 * 1024))") == std::to_string(8 * 1024 * 1024));
  auto v = c.scalar("SELECT repeat('ab', 4 * 1024 * 1024)");
  REQUIRE(v);
  CHECK(v->size() == 8u * 1024 * 1024);
  CHECK(c.scalar("SELECT 'still framed'") == "still framed");
}

namespace {

// The answers up to the next ReadyForQuery, each as its type, an ErrorResponse with its
// SQLSTATE and a DataRow with its first column ("1 2 C E:42P05 Z").
std::string answer_types(raw_client& c) {
  std::string out;
  while (auto m = c.message()) {
    if (!out.empty()) out += ' ';
    out += m->first;
    if (m->first == 'E') out += ":" + error_code_of(m->second);
    if (m->first == 'D' && m->second.size() >= 6) {
      std::size_t len = 0;
      for (int i = 2; i < 6; ++i) len = (len << 8) | static_cast<unsigned char>(m->second[static_cast<std::size_t>(i)]);
      out += ":" + m->second.substr(6, len);
    }
    if (m->first == 'Z') {
      out += ":" + m->second.substr(0, 1);
      break;
    }
  }
  return out;
}

// A Parse under a name in use, mid-batch after a write, and a Bind of that name after: what a
// server (or a Meridian) at `port` answers.
std::vector<std::string> parse_name_in_use(int port, const std::string& tag) {
  namespace fe = meridian::protocol::fe;
  raw_client c(port);
  REQUIRE(c.login().empty());
  std::vector<std::string> seen;
  std::string out;
  fe::serialize(fe::parse{"s1", "SELECT 1", {}}, out);
  fe::serialize_empty('S', out);
  REQUIRE(c.send(out));
  seen.push_back(answer_types(c));
  out.clear();
  const std::string no_params("\0\0\0\0\0\0", 6);
  fe::serialize(fe::parse{"", "INSERT INTO itest_lost VALUES ('" + tag + "')", {}}, out);
  fe::serialize(fe::bind{"", "", no_params}, out);
  fe::serialize(fe::execute{"", 0}, out);
  fe::serialize(fe::parse{"s1", "SELECT 2", {}}, out);
  fe::serialize(fe::bind{"", "s1", no_params}, out);
  fe::serialize(fe::execute{"", 0}, out);
  fe::serialize_empty('S', out);
  REQUIRE(c.send(out));
  seen.push_back(answer_types(c));
  out.clear();
  fe::serialize(fe::bind{"", "s1", no_params}, out);
  fe::serialize(fe::execute{"", 0}, out);
  fe::serialize_empty('S', out);
  REQUIRE(c.send(out));
  seen.push_back(answer_types(c));
  return seen;
}

}  // namespace

TEST_CASE("a Parse under a name in use fails with 42P05 as PostgreSQL fails it, in every region",
          "[integration][prepared]") {
  make_itest_lost();
  pg_connection admin(sandbox::admin_dsn(us));
  const auto direct = parse_name_in_use(sandbox::pg_port(us), "itest_dup_direct");
  // The error where the Parse stands, the batch's write rolled back with it, the statement
  // first prepared under the name kept.
  CHECK(direct == std::vector<std::string>{"1 Z:I", "1 2 C E:42P05 Z:I", "2 D:1 C Z:I"});
  CHECK(admin.scalar("SELECT count(*) FROM itest_lost WHERE name = 'itest_dup_direct'") == "0");
  for (int region : {us, eu}) {
    INFO(region_name(region));
    const std::string tag = std::string("itest_dup_") + region_name(region);
    CHECK(parse_name_in_use(sandbox::meridian_port(region), tag) == direct);
    CHECK(admin.scalar("SELECT count(*) FROM itest_lost WHERE name = '" + tag + "'") == "0");
  }
}
