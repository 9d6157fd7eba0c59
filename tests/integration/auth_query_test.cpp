// Users Meridian does not list, authenticated with a look-up on the primary (auth.query through
// a SECURITY DEFINER function, as PgBouncer's documentation advises), then logged in to the
// servers as themselves with the keys their SCRAM proof gave (or their md5 hash).
#include <catch2/catch.hpp>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {

constexpr int port = 26492;

std::string dsn(const std::string& user, const std::string& password) {
  return "host=127.0.0.1 port=" + std::to_string(port) + " user=" + user + " password=" + password +
         " dbname=app connect_timeout=10";
}

// A conninfo value in single quotes, backslash-escaped as libpq reads it.
std::string conninfo_quote(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

void prepare_roles() {
  pg_connection admin(sandbox::admin_dsn(us) + " dbname=app");
  REQUIRE(admin.ok());
  admin.scalar(R"(DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lookup_auth') THEN
      CREATE ROLE lookup_auth LOGIN PASSWORD 'lookup-secret';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dyn_scram') THEN
      SET LOCAL password_encryption = 'scram-sha-256';
      CREATE ROLE dyn_scram LOGIN PASSWORD 'dyn-secret';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'dyn_md5') THEN
      SET LOCAL password_encryption = 'md5';
      CREATE ROLE dyn_md5 LOGIN PASSWORD 'md5-secret';
    END IF;
  END $$)");
  admin.scalar("ALTER ROLE dyn_scram PASSWORD 'dyn-secret'");
  admin.scalar(R"(CREATE OR REPLACE FUNCTION public.meridian_user_lookup(text, OUT usename name, OUT passwd text)
    RETURNS SETOF record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
    AS 'SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = $1')");
  admin.scalar("REVOKE ALL ON FUNCTION public.meridian_user_lookup(text) FROM PUBLIC");
  admin.scalar("GRANT EXECUTE ON FUNCTION public.meridian_user_lookup(text) TO lookup_auth");
}

}  // namespace

TEST_CASE("auth.query: unlisted users log in with the secret the primary stores, and servers take them as themselves",
          "[integration][auth][auth-query]") {
  prepare_roles();
  spawned_meridian m("auth-query-test",
                     primary_only_config(port,
                                         "pool: { size: 2 }\n"
                                         "auth: { method: md5, user: lookup_auth, database: app, cache: 1s,\n"
                                         "        query: 'SELECT usename, passwd FROM public.meridian_user_lookup($1)' }\n"
                                         "limits: { auth_failure_delay: 0ms }\n"
                                         "users:\n  - { name: lookup_auth, password: lookup-secret }\n"));
  REQUIRE(eventually([] { return pg_connection(dsn("lookup_auth", "lookup-secret")).ok(); }, 10s));

  // A SCRAM user: Meridian never learns the password, yet its server connections log in as it.
  pg_connection scram(dsn("dyn_scram", "dyn-secret"));
  REQUIRE(scram.ok());
  CHECK(scram.scalar("SELECT current_user") == "dyn_scram");
  CHECK(scram.scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = 'dyn_scram' AND pid = pg_backend_pid()") == "1");
  // An md5 user: the stored hash answers the server's md5 challenge.
  pg_connection md5(dsn("dyn_md5", "md5-secret"));
  REQUIRE(md5.ok());
  CHECK(md5.scalar("SELECT current_user") == "dyn_md5");

  // Wrong passwords, unknown users and names made to break the query all fail alike.
  for (const auto& [user, password] : std::vector<std::pair<std::string, std::string>>{
           {"dyn_scram", "nope"}, {"dyn_md5", "nope"}, {"nobody_here", "x"}, {"x$m$'; DROP ROLE app; --", "x"}}) {
    INFO(user);
    pg_connection refused("host=127.0.0.1 port=" + std::to_string(port) + " dbname=app connect_timeout=10 password=" +
                          password + " user=" + conninfo_quote(user));
    CHECK_FALSE(refused.ok());
    CHECK_THAT(refused.error(), Catch::Contains("password authentication failed"));
  }
  pg_connection admin(sandbox::admin_dsn(us) + " dbname=app");
  CHECK(admin.scalar("SELECT count(*) FROM pg_roles WHERE rolname = 'app'") == "1");

  // The password changes on the primary: once the cached secret expires the old password
  // fails and the new one works, servers included.
  admin.scalar("ALTER ROLE dyn_scram PASSWORD 'dyn-secret-2'");
  CHECK(eventually([] { return !pg_connection(dsn("dyn_scram", "dyn-secret")).ok(); }, 10s));
  pg_connection renewed(dsn("dyn_scram", "dyn-secret-2"));
  REQUIRE(renewed.ok());
  CHECK(renewed.scalar("SELECT current_user") == "dyn_scram");
  CHECK(scram.scalar("SELECT 'still connected'") == "still connected");
}
