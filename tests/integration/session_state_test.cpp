// Session state never crosses clients: a parameter set with set_config follows its client as a
// SET does and is gone for the next client of the same server connection; pg_dump and
// pg_restore, which begin with set_config('search_path', '', false), run through every region
// while an application that names its tables unqualified goes on without an error.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "support.hpp"

using namespace meridian::testing;
using namespace std::chrono_literals;

namespace {

constexpr const char* default_search_path = "\"$user\", public";

// A schema whose table shadows nothing, a public table the application reads unqualified, and a
// schema to dump; on the replicas before a test reads there.
void prepare_tables() {
  pg_connection setup(sandbox::dsn(us));
  REQUIRE(setup.ok());
  setup.scalar("CREATE SCHEMA IF NOT EXISTS itest_state");
  setup.scalar("CREATE TABLE IF NOT EXISTS itest_state.itest_where (v text)");
  setup.scalar("TRUNCATE itest_state.itest_where");
  setup.scalar("INSERT INTO itest_state.itest_where VALUES ('from itest_state')");
  setup.scalar("CREATE TABLE IF NOT EXISTS public.itest_plain (id int PRIMARY KEY)");
  setup.scalar("INSERT INTO public.itest_plain SELECT g FROM generate_series(1, 10) g ON CONFLICT DO NOTHING");
  setup.scalar("CREATE SCHEMA IF NOT EXISTS itest_dump");
  setup.scalar("CREATE TABLE IF NOT EXISTS itest_dump.items (id int PRIMARY KEY, v text)");
  setup.scalar("TRUNCATE itest_dump.items");
  setup.scalar("INSERT INTO itest_dump.items SELECT g, 'item ' || g FROM generate_series(1, 500) g");
  for (int r : {eu, ap}) {
    pg_connection replica(sandbox::admin_dsn(r));
    REQUIRE(eventually([&] { return replica.scalar("SELECT count(*) FROM itest_dump.items") == "500"; }, 10s));
  }
}

// What a new client of `region` sees: its search_path, and whether its unqualified table is found.
void check_fresh_clients(int region, int clients) {
  for (int i = 0; i < clients; ++i) {
    pg_connection c(sandbox::dsn(region));
    REQUIRE(c.ok());
    CHECK(c.scalar("SHOW search_path") == default_search_path);
    CHECK(c.sqlstate_of("SELECT count(*) FROM itest_plain") == "");
    CHECK(c.scalar("SHOW statement_timeout") == "0");
  }
}

std::string dsn_for(int region, const std::string& dbname) {
  return "host=127.0.0.1 port=" + std::to_string(sandbox::meridian_port(region)) +
         " user=app password=app-secret dbname=" + dbname + " connect_timeout=10";
}

}  // namespace

TEST_CASE("set_config follows its client as SET does, in every region", "[integration][params]") {
  prepare_tables();
  for (int region : {us, eu, ap}) {
    INFO(region_name(region));
    pg_connection c(sandbox::dsn(region));
    pg_connection other(sandbox::dsn(region));
    REQUIRE(c.ok());
    REQUIRE(other.ok());
    c.scalar("SELECT pg_catalog.set_config('search_path', 'itest_state, public', false)");
    c.scalar("SELECT set_config('statement_timeout', '4321ms', false)");
    // A local one lasts until the end of its (implicit) transaction.
    c.scalar("SELECT set_config('lock_timeout', '1234ms', true)");
    for (int i = 0; i < 10; ++i) {
      // The other client keeps taking server connections in between.
      CHECK(other.sqlstate_of("SELECT v FROM itest_where") == "42P01");
      CHECK(other.scalar("SHOW search_path") == default_search_path);
      CHECK(c.scalar("SELECT v FROM itest_where") == "from itest_state");
      CHECK(c.scalar("SHOW statement_timeout") == "4321ms");
      CHECK(c.scalar("SHOW lock_timeout") == "0");
      // A write in between: the session moves to the primary and back.
      c.scalar("INSERT INTO itest_plain VALUES (1) ON CONFLICT DO NOTHING");
    }
    // A name computed by the query: the session stays on its server connection.
    c.scalar("SELECT set_config(name, 'public', false) FROM pg_settings WHERE name = 'search_path'");
    for (int i = 0; i < 5; ++i) {
      CHECK(other.sqlstate_of("SELECT v FROM itest_where") == "42P01");
      CHECK(c.scalar("SHOW search_path") == "public");
      CHECK(c.sqlstate_of("SELECT v FROM itest_where") == "42P01");
    }
  }
}

TEST_CASE("a client's set_config never reaches the next client of its server connection",
          "[integration][params]") {
  prepare_tables();
  for (int region : {us, eu, ap}) {
    INFO(region_name(region));
    {
      // As pg_dump begins: every unqualified name is then unknown to this session.
      pg_connection c(sandbox::dsn(region));
      REQUIRE(c.ok());
      c.scalar("SELECT pg_catalog.set_config('search_path', '', false)");
      CHECK(c.sqlstate_of("SELECT count(*) FROM itest_plain") == "42P01");
      CHECK(c.scalar("SELECT count(*) FROM public.itest_plain") == "10");
      // On the primary too, where the empty path is set again before the write.
      CHECK(c.sqlstate_of("INSERT INTO itest_plain VALUES (1) ON CONFLICT DO NOTHING") == "42P01");
      c.scalar("SELECT set_config('statement_timeout', '9s', false)");
    }
    check_fresh_clients(region, 10);
    {
      pg_connection c(sandbox::dsn(region));
      REQUIRE(c.ok());
      c.scalar("SELECT set_config(name, '', false) FROM pg_settings WHERE name = 'search_path'");
      CHECK(c.sqlstate_of("SELECT count(*) FROM itest_plain") == "42P01");
    }
    check_fresh_clients(region, 10);
  }
}

TEST_CASE("pg_dump, pg_dump -j and pg_restore through every region, beside a running application",
          "[integration][params][dump]") {
  prepare_tables();
  const std::string bin = "/usr/lib/postgresql/15/bin/";
  const std::string dir = sandbox::dir() + "/itest-dump";
  REQUIRE(run_command("rm -rf " + dir + " && mkdir -p " + dir + " && chmod 777 " + dir).exit_code == 0);
  // What a direct dump holds, as SQL: the dumps through Meridian must hold the same.
  const std::string direct = "host=127.0.0.1 port=" + pg_port_str(us) + " user=app password=app-secret dbname=app";
  REQUIRE(run_command(bin + "pg_dump -Fc -n itest_dump -f " + dir + "/direct.dump -d '" + direct + "'").exit_code == 0);
  // pg_restore writes its script between \restrict and \unrestrict lines with a random key.
  const auto as_sql = [&](const std::string& archive) {
    return run_command(bin + "pg_restore -f - " + archive + " | grep -v -e '^.restrict ' -e '^.unrestrict '");
  };
  const auto expected = as_sql(dir + "/direct.dump");
  REQUIRE(expected.exit_code == 0);
  REQUIRE(expected.output.find("COPY itest_dump.items") != std::string::npos);
  for (int region : {us, eu, ap}) {
    INFO(region_name(region));
    const std::string restored = std::string("itest_restored_") + (region == us ? "us" : region == eu ? "eu" : "ap");
    {
      pg_connection admin(sandbox::admin_dsn(us));
      REQUIRE(admin.ok());
      admin.scalar("DROP DATABASE IF EXISTS " + restored + " WITH (FORCE)");
      admin.scalar("CREATE DATABASE " + restored + " OWNER app");
    }
    // The application: unqualified names, on a connection of its own and on new ones.
    std::atomic<bool> stop{false};
    std::atomic<int> app_queries{0};
    std::atomic<int> app_errors{0};
    joined_threads app{stop, {}};
    for (int t = 0; t < 2; ++t) {
      app.threads.emplace_back([&, region, t] {
        pg_connection kept(sandbox::dsn(region));
        while (!stop) {
          pg_connection fresh(sandbox::dsn(region));
          auto& c = t == 0 ? kept : fresh;
          if (!c.ok() || c.sqlstate_of("SELECT count(*) FROM itest_plain") != "") ++app_errors;
          ++app_queries;
        }
      });
    }
    const std::string prefix = dir + "/" + region_name(region);
    auto custom = run_command(bin + "pg_dump -Fc -n itest_dump -f " + prefix + ".dump -d '" + sandbox::dsn(region) + "'");
    CHECK(custom.exit_code == 0);
    INFO(custom.output);
    auto parallel =
        run_command(bin + "pg_dump -Fd -j 2 -n itest_dump -f " + prefix + ".dir -d '" + sandbox::dsn(region) + "'");
    CHECK(parallel.exit_code == 0);
    INFO(parallel.output);
    auto restore = run_command(bin + "pg_restore --exit-on-error -d '" + dsn_for(region, restored) + "' " + prefix + ".dump");
    CHECK(restore.exit_code == 0);
    INFO(restore.output);
    // The application has run beside all three, and runs on after them.
    const int seen = app_queries;
    REQUIRE(eventually([&] { return app_queries > seen + 20; }, 10s));
    app.join();
    CHECK(app_errors == 0);
    CHECK(app_queries > 20);
    {
      pg_connection check(sandbox::admin_dsn(us) + " dbname=" + restored);
      REQUIRE(check.ok());
      CHECK(check.scalar("SELECT count(*) FROM itest_dump.items") == "500");
    }
    CHECK(as_sql(prefix + ".dump").output == expected.output);
    CHECK(as_sql(prefix + ".dir").output == expected.output);
    check_fresh_clients(region, 10);
  }
}

TEST_CASE("what a function of the application's leaves in a session never reaches another client",
          "[integration][params]") {
  {
    pg_connection setup(sandbox::dsn(us));
    REQUIRE(setup.ok());
    setup.scalar(R"(CREATE OR REPLACE FUNCTION itest_set_tenant(t text) RETURNS text LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM set_config('itest.tenant', t, false);
        CREATE TEMP TABLE IF NOT EXISTS itest_scratch (x int);
        RETURN t;
      END $$)");
  }
  // Run where the function ran: on the primary.
  const std::string tenant = "/* meridian:primary */ SELECT coalesce(nullif(current_setting('itest.tenant', true), ''), 'none')";
  const std::string scratch = "/* meridian:primary */ SELECT count(*) FROM pg_class "
                              "WHERE relnamespace = pg_my_temp_schema() AND relname = 'itest_scratch'";
  for (int region : {us, eu, ap}) {
    INFO(region_name(region));
    pg_connection a(sandbox::dsn(region));
    pg_connection b(sandbox::dsn(region));
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    // Inside a transaction the client sees what its function did, as on a direct connection.
    a.scalar("BEGIN");
    CHECK(a.scalar("SELECT itest_set_tenant('a')") == "a");
    CHECK(a.scalar("SELECT current_setting('itest.tenant')") == "a");
    CHECK(a.scalar("SELECT count(*) FROM itest_scratch") == "0");
    a.scalar("COMMIT");
    for (int i = 0; i < 5; ++i) {
      CHECK(a.scalar("SELECT itest_set_tenant('a" + std::to_string(i) + "')") == "a" + std::to_string(i));
      // Other clients, on the connection the function ran on or any other.
      CHECK(b.scalar(tenant) == "none");
      CHECK(b.scalar(scratch) == "0");
      pg_connection fresh(sandbox::dsn(region));
      REQUIRE(fresh.ok());
      CHECK(fresh.scalar(tenant) == "none");
      CHECK(fresh.scalar(scratch) == "0");
    }
  }
}

TEST_CASE("a function calling one that leaves state has its connection reset too, from what Meridian reads",
          "[integration][params]") {
  // A database of its own, so that Meridian reads its functions after they exist.
  {
    pg_connection admin(sandbox::admin_dsn(us));
    REQUIRE(admin.ok());
    admin.scalar("DROP DATABASE IF EXISTS itest_functions WITH (FORCE)");
    admin.scalar("CREATE DATABASE itest_functions OWNER app");
  }
  {
    pg_connection setup(sandbox::admin_dsn(us) + " dbname=itest_functions user=app");
    REQUIRE(setup.ok());
    setup.scalar(R"(CREATE FUNCTION set_tenant(t text) RETURNS void LANGUAGE plpgsql AS $$
      BEGIN PERFORM set_config('itest.tenant', t, false); END $$)");
    // No word of state in its own body: stateful because it calls set_tenant.
    setup.scalar(R"(CREATE FUNCTION as_tenant(t text) RETURNS text LANGUAGE sql AS $$
      SELECT set_tenant(t); SELECT t $$)");
    for (int r : {eu, ap}) {
      // The database itself may not have reached the replica yet: a new connection each time.
      REQUIRE(eventually([&] {
        pg_connection replica(sandbox::admin_dsn(r) + " dbname=itest_functions");
        return replica.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'as_tenant'") == "1";
      }, 10s));
    }
  }
  const std::string tenant = "/* meridian:primary */ SELECT coalesce(nullif(current_setting('itest.tenant', true), ''), 'none')";
  for (int region : {us, eu}) {
    INFO(region_name(region));
    pg_connection a(dsn_for(region, "itest_functions"));
    pg_connection b(dsn_for(region, "itest_functions"));
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    for (int i = 0; i < 5; ++i) {
      CHECK(a.scalar("SELECT as_tenant('t" + std::to_string(i) + "')") == "t" + std::to_string(i));
      CHECK(b.scalar(tenant) == "none");
      pg_connection fresh(dsn_for(region, "itest_functions"));
      REQUIRE(fresh.ok());
      CHECK(fresh.scalar(tenant) == "none");
    }
  }
}

TEST_CASE("what a trigger leaves in a session never reaches another client", "[integration][params]") {
  // A database of its own, so that Meridian reads its triggers after they exist.
  {
    pg_connection admin(sandbox::admin_dsn(us));
    REQUIRE(admin.ok());
    admin.scalar("DROP DATABASE IF EXISTS itest_triggers WITH (FORCE)");
    admin.scalar("CREATE DATABASE itest_triggers OWNER app");
  }
  {
    pg_connection setup(sandbox::admin_dsn(us) + " dbname=itest_triggers user=app");
    REQUIRE(setup.ok());
    // An audit trigger that remembers the last tenant in the session, as applications do.
    setup.scalar(R"(CREATE FUNCTION remember_tenant() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM set_config('itest.tenant', NEW.tenant, false); RETURN NEW; END $$)");
    setup.scalar("CREATE TABLE orders (id serial PRIMARY KEY, tenant text)");
    setup.scalar("CREATE TRIGGER remember BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION remember_tenant()");
    for (int r : {eu, ap}) {
      REQUIRE(eventually([&] {
        pg_connection replica(sandbox::admin_dsn(r) + " dbname=itest_triggers");
        return replica.scalar("SELECT count(*) FROM pg_trigger WHERE tgname = 'remember'") == "1";
      }, 10s));
    }
  }
  const std::string tenant = "/* meridian:primary */ SELECT coalesce(nullif(current_setting('itest.tenant', true), ''), 'none')";
  for (int region : {us, eu}) {
    INFO(region_name(region));
    pg_connection a(dsn_for(region, "itest_triggers"));
    pg_connection b(dsn_for(region, "itest_triggers"));
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    for (int i = 0; i < 5; ++i) {
      const auto t = "t" + std::to_string(i);
      CHECK(a.sqlstate_of("INSERT INTO orders (tenant) VALUES ('" + t + "')").empty());
      CHECK(b.scalar(tenant) == "none");
      pg_connection fresh(dsn_for(region, "itest_triggers"));
      REQUIRE(fresh.ok());
      CHECK(fresh.scalar(tenant) == "none");
    }
    // Inside a transaction the client sees what its trigger did, as on a direct connection.
    a.scalar("BEGIN");
    CHECK(a.sqlstate_of("INSERT INTO orders (tenant) VALUES ('inside')").empty());
    CHECK(a.scalar("SELECT current_setting('itest.tenant')") == "inside");
    a.scalar("COMMIT");
    CHECK(b.scalar(tenant) == "none");
  }
}

TEST_CASE("RESET ALL and DISCARD ALL return a session to its start-up parameters, as direct",
          "[integration][params]") {
  // The client starts with its own time zone and date style (libpq sends them as start-up
  // parameters from PGTZ and PGDATESTYLE); the servers' defaults differ.
  for (int region : {us, eu}) {
    for (const char* reset : {"RESET ALL", "DISCARD ALL", "extended DISCARD ALL", "extended RESET ALL"}) {
      INFO(region_name(region) << ", " << reset);
      pg_connection c(sandbox::dsn(region) + " options='-c TimeZone=Europe/Paris -c DateStyle=SQL,DMY'");
      REQUIRE(c.ok());
      CHECK(c.scalar("SHOW timezone") == "Europe/Paris");
      REQUIRE(c.sqlstate_of("SET timezone = 'America/New_York'") == "");
      REQUIRE(c.sqlstate_of("SET datestyle = 'ISO, MDY'") == "");
      REQUIRE(c.sqlstate_of("SET search_path = itest_state") == "");
      CHECK(c.scalar("SHOW timezone") == "America/New_York");
      if (std::string(reset).rfind("extended ", 0) == 0) {
        // Parse, Bind, Describe, Execute, Sync, as drivers and poolers send it.
        PGresult* r = PQexecParams(c.raw(), reset + 9, 0, nullptr, nullptr, nullptr, nullptr, 0);
        REQUIRE(PQresultStatus(r) == PGRES_COMMAND_OK);
        PQclear(r);
      } else {
        REQUIRE(c.sqlstate_of(reset) == "");
      }
      // What the server says, and what the client was told.
      CHECK(c.scalar("SHOW timezone") == "Europe/Paris");
      CHECK(c.scalar("SHOW datestyle") == "SQL, DMY");
      CHECK(c.scalar("SHOW search_path") == default_search_path);
      CHECK(std::string(PQparameterStatus(c.raw(), "TimeZone")) == "Europe/Paris");
      CHECK(std::string(PQparameterStatus(c.raw(), "DateStyle")) == "SQL, DMY");
      // Still so on its next transactions (other server connections, set up from the start-up
      // values).
      for (int i = 0; i < 3; ++i) CHECK(c.scalar("SELECT current_setting('TimeZone')") == "Europe/Paris");
    }
    // Nobody else gets them.
    pg_connection other(sandbox::dsn(region));
    REQUIRE(other.ok());
    CHECK(other.scalar("SHOW timezone") != "Europe/Paris");
  }
}

TEST_CASE("start-up parameters are reported as PostgreSQL spells them, in every region", "[integration][params]") {
  // Odd spellings of each reported parameter a client may set at start-up; drivers choose their
  // codec and date parsing from what the server reports back.
  const std::string odd =
      " client_encoding=utf8 options='-c TimeZone=europe/paris -c DateStyle=iso,dmy -c IntervalStyle=SQL_standard"
      " -c standard_conforming_strings=true -c default_transaction_read_only=0'";
  const char* reported[] = {"client_encoding", "TimeZone", "DateStyle", "IntervalStyle",
                            "standard_conforming_strings", "default_transaction_read_only"};
  pg_connection direct("host=127.0.0.1 port=" + pg_port_str(us) + " user=app password=app-secret dbname=app" + odd);
  REQUIRE(direct.ok());
  CHECK(std::string(PQparameterStatus(direct.raw(), "TimeZone")) == "Europe/Paris");  // the spelling differs
  for (int region : {us, eu}) {
    for (int connection = 0; connection < 2; ++connection) {  // asked of a server, then known
      INFO(region_name(region) << ", connection " << connection);
      pg_connection c(sandbox::dsn(region) + odd);
      REQUIRE(c.ok());
      for (const char* name : reported) {
        INFO(name);
        CHECK(std::string(PQparameterStatus(c.raw(), name)) == PQparameterStatus(direct.raw(), name));
      }
      CHECK(c.scalar("SHOW TimeZone") == "Europe/Paris");
      CHECK(c.scalar("SELECT to_char(date '2026-12-07', 'DD/MM')") == "07/12");
      // RESET ALL returns to them, reported the same way.
      REQUIRE(c.sqlstate_of("SET TimeZone = 'UTC'") == "");
      REQUIRE(c.sqlstate_of("RESET ALL") == "");
      CHECK(std::string(PQparameterStatus(c.raw(), "TimeZone")) == "Europe/Paris");
      CHECK(std::string(PQparameterStatus(c.raw(), "DateStyle")) == PQparameterStatus(direct.raw(), "DateStyle"));
    }
  }
  // A value PostgreSQL refuses at start-up is refused the same way.
  pg_connection bad_direct("host=127.0.0.1 port=" + pg_port_str(us) +
                           " user=app password=app-secret dbname=app options='-c TimeZone=nowhere/at_all'");
  CHECK_FALSE(bad_direct.ok());
  for (int region : {us, eu}) {
    INFO(region_name(region));
    pg_connection bad(sandbox::dsn(region) + " options='-c TimeZone=nowhere/at_all'");
    CHECK_FALSE(bad.ok());
    CHECK_THAT(bad.error(), Catch::Contains("invalid value for parameter \"TimeZone\": \"nowhere/at_all\""));
    CHECK_THAT(bad_direct.error(), Catch::Contains("invalid value for parameter \"TimeZone\": \"nowhere/at_all\""));
  }
}
