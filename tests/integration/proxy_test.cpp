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

TEST_CASE("killing a server backend mid-query fails only that client", "[integration][failure]") {
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
  PQclear(r);
  while ((r = PQgetResult(victim.raw())) != nullptr) PQclear(r);
  // Everyone else carries on, including brand-new clients.
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

// What the client reads until the connection ends: the SQLSTATE of each ErrorResponse.
std::vector<std::string> errors_until_closed(raw_client& c) {
  std::vector<std::string> codes;
  while (auto m = c.message()) {
    if (m->first == 'E') codes.push_back(error_code_of(m->second));
  }
  return codes;
}

// What libpq reports, over TLS, of a query whose backend is terminated while it runs.
std::string terminated_over_tls(const std::string& dsn, int node, const std::string& query, const std::string& marker) {
  pg_connection c(dsn + " sslmode=require");
  REQUIRE(c.ok());
  REQUIRE(PQsendQuery(c.raw(), query.c_str()) == 1);
  terminate_backend_running(node, marker);
  std::string errors;
  while (PGresult* r = PQgetResult(c.raw())) {
    if (PQresultStatus(r) == PGRES_FATAL_ERROR) errors += PQresultErrorMessage(r);
    PQclear(r);
  }
  return errors;
}

}  // namespace

TEST_CASE("a TLS client whose backend is terminated is told so as PostgreSQL tells it, in every region",
          "[integration][failure][tls]") {
  for (int region : {us, eu}) {
    INFO(region_name(region));
    const std::string tag = std::string("itest_tls_fatal_") + (region == us ? "us" : "eu");
    const std::string sleep = "SELECT pg_sleep(60), '" + tag;
    const auto direct = terminated_over_tls("host=127.0.0.1 port=" + pg_port_str(region) +
                                                " user=app password=app-secret dbname=app connect_timeout=10",
                                            region, sleep + "_direct'", tag + "_direct");
    const auto through = terminated_over_tls(
        sandbox::dsn(region), region, (region == us ? "" : "/* meridian:replica */ ") + sleep + "_meridian'",
        tag + "_meridian");
    // The server's FATAL, then TLS closed as PostgreSQL closes it (close_notify): libpq says the
    // same both ways ("SSL connection has been closed unexpectedly", not "SSL SYSCALL error").
    CHECK_THAT(through, Catch::Contains("terminating connection due to administrator command"));
    CHECK(through == direct);
  }
}

TEST_CASE("a terminated backend's FATAL is what its client gets, and then the end, in every region",
          "[integration][failure]") {
  for (int region : {us, eu}) {
    INFO(region_name(region));
    const std::string tag = std::string("itest_fatal_") + (region == us ? "us" : "eu");
    {
      // Mid-query, on this region's own node.
      raw_client c(sandbox::meridian_port(region));
      REQUIRE(c.login().empty());
      std::string out;
      const std::string sleep = "SELECT pg_sleep(60), '" + tag + "_a'";
      meridian::protocol::fe::serialize(
          meridian::protocol::fe::query{region == us ? sleep : "/* meridian:replica */ " + sleep}, out);
      REQUIRE(c.send(out));
      terminate_backend_running(region, tag + "_a");
      // As from PostgreSQL: the server's 57P01 alone, no word of Meridian's after it.
      CHECK(errors_until_closed(c) == std::vector<std::string>{"57P01"});
      CHECK(c.closed_by_server());
    }
    {
      // Idle in a transaction (on the primary): the server speaks unasked.
      raw_client c(sandbox::meridian_port(region));
      REQUIRE(c.login().empty());
      std::string out;
      meridian::protocol::fe::serialize(meridian::protocol::fe::query{"BEGIN; SELECT '" + tag + "_b'"}, out);
      REQUIRE(c.send(out));
      for (auto m = c.message(); m && m->first != 'Z'; m = c.message()) {
      }
      terminate_backend_running(us, tag + "_b");
      CHECK(errors_until_closed(c) == std::vector<std::string>{"57P01"});
      CHECK(c.closed_by_server());
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
