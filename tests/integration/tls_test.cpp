// TLS with clients: the sandbox's Meridians offer TLS (client: allow) with a certificate of the
// sandbox's own CA; a Meridian of this test's own requires it.
#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {

constexpr int required_port = 26497;

std::string ca() { return sandbox::dir() + "/tls/ca.crt"; }

std::string tls_dsn(int port, const std::string& options) {
  return "host=127.0.0.1 port=" + std::to_string(port) + " user=app password=app-secret dbname=app connect_timeout=10 " + options;
}

// A Meridian of the test's own, in front of the sandbox's primary, with client TLS required.
std::string required_tls_config() {
  const std::string tls = "tls: { client: required, cert: " + sandbox::dir() + "/tls/server.crt, key: " + sandbox::dir() +
                          "/tls/server.key }\n";
  return primary_only_config(required_port, "pool: { size: 2 }\nauth: { method: scram-sha-256 }\n" + tls +
                                                "users:\n  - { name: app, password: app-secret }\n");
}

// A CA of its own in `dir` and a certificate from it for 127.0.0.1 in server.crt/server.key.
void make_ca_and_server_certificate(const std::string& dir, const std::string& name) {
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes ";
  auto made = run_command(
      "set -e; mkdir -p " + dir + "; cd " + dir + "; openssl req -x509" + ec + "-days 1 -subj '/CN=" + name +
      "' -keyout ca.key -out ca.crt 2>/dev/null; openssl req" + ec + "-subj /CN=meridian -keyout server.key -out server.csr "
      "2>/dev/null; printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext; openssl x509 -req -in server.csr -CA ca.crt "
      "-CAkey ca.key -CAcreateserial -days 1 -extfile server.ext -out server.crt 2>/dev/null");
  REQUIRE(made.exit_code == 0);
}

}  // namespace

TEST_CASE("clients connect with sslmode=verify-full against the sandbox CA, TLS 1.3, SCRAM bound to the channel",
          "[integration][tls]") {
  for (int r : {us, eu, ap}) {
    INFO(region_name(r));
    pg_connection c(tls_dsn(sandbox::meridian_port(r), "sslmode=verify-full sslrootcert=" + ca() + " channel_binding=require"));
    REQUIRE(c.ok());
    CHECK(PQsslInUse(c.raw()) == 1);
    CHECK(std::string(PQsslAttribute(c.raw(), "protocol")) == "TLSv1.3");
    CHECK(c.scalar("SELECT 40 + 2") == "42");
  }
  // Plain connections still work where TLS is allowed, not required.
  pg_connection plain(tls_dsn(sandbox::meridian_port(eu), "sslmode=disable"));
  REQUIRE(plain.ok());
  CHECK(PQsslInUse(plain.raw()) == 0);
}

TEST_CASE("a certificate from another CA fails verification", "[integration][tls]") {
  const std::string other = sandbox::dir() + "/tls-other-ca";
  auto made = run_command("mkdir -p " + other + " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                          "-days 1 -subj '/CN=Someone else' -keyout " + other + "/ca.key -out " + other + "/ca.crt 2>&1");
  REQUIRE(made.exit_code == 0);
  pg_connection c(tls_dsn(sandbox::meridian_port(us), "sslmode=verify-full sslrootcert=" + other + "/ca.crt"));
  CHECK_FALSE(c.ok());
  CHECK_THAT(c.error(), Catch::Contains("certificate verify failed"));
  // verify-full also checks the name: the certificate is not for this host name.
  pg_connection wrong_name("host=localhost hostaddr=127.0.0.1 port=" + std::to_string(sandbox::meridian_port(us)) +
                           " user=app password=app-secret dbname=app sslmode=verify-full sslrootcert=" + ca());
  CHECK(wrong_name.ok());  // localhost is in the certificate
  pg_connection other_name("host=meridian.example hostaddr=127.0.0.1 port=" + std::to_string(sandbox::meridian_port(us)) +
                           " user=app password=app-secret dbname=app sslmode=verify-full sslrootcert=" + ca());
  CHECK_FALSE(other_name.ok());
  CHECK_THAT(other_name.error(), Catch::Contains("does not match host name"));
}

TEST_CASE("with TLS required a plaintext client is refused and an encrypted one served", "[integration][tls]") {
  spawned_meridian m("tls-required-test", required_tls_config());
  REQUIRE(eventually([] { return pg_connection(tls_dsn(required_port, "sslmode=require")).ok(); }, 10s));
  pg_connection plain(tls_dsn(required_port, "sslmode=disable"));
  CHECK_FALSE(plain.ok());
  CHECK_THAT(plain.error(), Catch::Contains("accepts only encrypted connections"));
  // TLS 1.2 is below the default minimum.
  pg_connection old(tls_dsn(required_port, "sslmode=require ssl_max_protocol_version=TLSv1.2"));
  CHECK_FALSE(old.ok());
  pg_connection bound(tls_dsn(required_port, "sslmode=verify-full sslrootcert=" + ca() + " channel_binding=require"));
  REQUIRE(bound.ok());
  CHECK(bound.scalar("SELECT current_user") == "app");
  // A wrong password over TLS is still a wrong password.
  pg_connection wrong("host=127.0.0.1 port=" + std::to_string(required_port) +
                      " user=app password=nope dbname=app sslmode=require channel_binding=require");
  CHECK_FALSE(wrong.ok());
  CHECK_THAT(wrong.error(), Catch::Contains("password authentication failed"));
}

TEST_CASE("pgbench over TLS through every region: 0 failed transactions", "[integration][tls]") {
  const std::string script = sandbox::dir() + "/tls-select.sql";
  std::ofstream(script) << "SELECT inet_server_port();\n";
  for (int r : {us, eu, ap}) {
    INFO(region_name(r));
    auto out = run_command("PGSSLMODE=verify-full PGSSLROOTCERT=" + ca() +
                           " PGPASSWORD=app-secret /usr/lib/postgresql/15/bin/pgbench -n -f " + script +
                           " -c 4 -j 2 -t 200 -h 127.0.0.1 -p " +
                           std::to_string(sandbox::meridian_port(r)) + " -U app app 2>&1");
    INFO(out.output);
    CHECK(out.exit_code == 0);
    CHECK_THAT(out.output, Catch::Contains("number of failed transactions: 0"));
  }
}

TEST_CASE("Meridian reaches PostgreSQL over TLS, the server's certificate verified", "[integration][tls]") {
  // The sandbox's Meridians use server_tls sslmode verify-full against its CA.
  for (int r : {us, eu, ap}) {
    INFO(region_name(r));
    pg_connection c(sandbox::dsn(r));
    REQUIRE(c.ok());
    CHECK(c.scalar("SELECT ssl::text || ' ' || version FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "true TLSv1.3");
    CHECK(c.scalar("BEGIN; SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "true");  // the primary's too
    c.scalar("COMMIT");
  }
}

TEST_CASE("a server certificate from another CA is refused, with a clear error to the client", "[integration][tls]") {
  const std::string other = sandbox::dir() + "/tls-other-ca";
  REQUIRE(run_command("mkdir -p " + other + " && [ -s " + other + "/ca.crt ] || openssl req -x509 -newkey ec -pkeyopt "
                      "ec_paramgen_curve:prime256v1 -nodes -days 1 -subj '/CN=Someone else' -keyout " + other +
                      "/ca.key -out " + other + "/ca.crt 2>&1").exit_code == 0);
  constexpr int port = 26496;
  spawned_meridian m("tls-server-test", primary_only_config(port,
                                                          "pool: { size: 2, connect_timeout: 3s }\n"
                                                          "auth: { method: scram-sha-256 }\n"
                                                          "users:\n  - { name: app, password: app-secret }\n",
                                                          ", sslmode: verify-full, sslrootcert: " + other + "/ca.crt"));
  std::string error;
  REQUIRE(eventually([&] {
    pg_connection c(tls_dsn(port, "sslmode=disable"));
    error = c.error();
    return error.find("certificate verify failed") != std::string::npos;
  }, 10s));
  INFO(error);
  CHECK_THAT(error, Catch::Contains("could not connect to server \"us-east-1\""));
}

TEST_CASE("SIGHUP puts new certificates in force without dropping connections; unreadable ones are refused",
          "[integration][tls][reload]") {
  constexpr int port = 26498;
  const std::string live = sandbox::dir() + "/tls-reload";
  const std::string first = live + "/first", second = live + "/second";
  make_ca_and_server_certificate(first, "Reload test CA one");
  make_ca_and_server_certificate(second, "Reload test CA two");
  REQUIRE(run_command("cp " + first + "/server.crt " + first + "/server.key " + live + "/").exit_code == 0);
  spawned_meridian m("tls-reload-test",
                     primary_only_config(port, "pool: { size: 2 }\nauth: { method: scram-sha-256 }\n"
                                               "tls: { client: required, cert: " + live + "/server.crt, key: " + live +
                                               "/server.key }\nusers:\n  - { name: app, password: app-secret }\n"));
  const auto verified_by = [&](const std::string& ca_dir) {
    return tls_dsn(port, "sslmode=verify-full channel_binding=require sslrootcert=" + ca_dir + "/ca.crt");
  };
  REQUIRE(eventually([&] { return pg_connection(verified_by(first)).ok(); }, 10s));
  pg_connection before(verified_by(first));
  REQUIRE(before.ok());
  CHECK_FALSE(pg_connection(verified_by(second)).ok());

  // New certificate and key in place, then SIGHUP: new connections get it (and SCRAM binds to
  // it); the connection made before keeps working on the old one.
  REQUIRE(run_command("cp " + second + "/server.crt " + second + "/server.key " + live + "/").exit_code == 0);
  m.signal(SIGHUP);
  REQUIRE(eventually([&] { return pg_connection(verified_by(second)).ok(); }, 10s));
  CHECK_FALSE(pg_connection(verified_by(first)).ok());
  CHECK(before.scalar("SELECT 'still here'") == "still here");

  // A key that does not match the certificate: the reload is refused and the second
  // certificate stays in force.
  REQUIRE(run_command("cp " + first + "/server.key " + live + "/server.key").exit_code == 0);
  m.signal(SIGHUP);
  pg_connection probe(verified_by(second));
  CHECK(probe.ok());
  // The refusal is logged; until then, and after, connections keep succeeding.
  const std::string log = sandbox::dir() + "/tls-reload-test.log";
  CHECK(eventually([&] { return pg_connection(verified_by(second)).ok() && file_contains(log, "reload of"); }, 10s));
  CHECK(before.scalar("SELECT 'after a refused reload'") == "after a refused reload");
}
