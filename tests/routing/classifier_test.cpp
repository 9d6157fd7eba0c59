// Statement classification: a table of statements and where they must run, with PostgreSQL 15's
// real function volatilities (pg15_function_volatility.txt is `SELECT DISTINCT proname,
// provolatile FROM pg_proc` from the sandbox's server).
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "routing/classification_cache.hpp"
#include "routing/classifier.hpp"
#include "tests/routing/pg15_functions.hpp"

using namespace meridian::routing;

namespace {

std::shared_ptr<function_volatility> pg15_functions() {
  auto f = meridian::testing::pg15_functions();
  REQUIRE(f->size() > 2000);
  return f;
}

constexpr auto R = target::any;
constexpr auto P = target::primary;

struct row {
  const char* sql;
  target where;
  tx_effect tx = tx_effect::none;
  bool pins = false;
};

const std::vector<row> table{
    // Plain reads
    {"SELECT 1", R},
    {"select 1", R},
    {"SELECT * FROM accounts", R},
    {"SELECT * FROM accounts WHERE id = 42", R},
    {"SELECT a.id, b.name FROM a JOIN b ON a.id = b.a_id WHERE b.x > 3 ORDER BY 1 LIMIT 10", R},
    {"SELECT count(*) FROM pgbench_accounts", R},
    {"SELECT abalance FROM pgbench_accounts WHERE aid = $1", R},
    {"SELECT sum(x), avg(y), max(z) FROM t GROUP BY w HAVING count(*) > 1", R},
    {"SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b DESC", R},
    {"SELECT * FROM t1 UNION ALL SELECT * FROM t2", R},
    {"SELECT * FROM t1 INTERSECT SELECT * FROM t2", R},
    {"SELECT * FROM t1 EXCEPT SELECT * FROM t2", R},
    {"SELECT * FROM (SELECT id FROM t) sub", R},
    {"SELECT * FROM t WHERE id IN (SELECT id FROM u)", R},
    {"SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.t = t.id)", R},
    {"WITH x AS (SELECT 1 AS a) SELECT a FROM x", R},
    {"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 10) SELECT * FROM r", R},
    {"SELECT row_number() OVER (PARTITION BY a ORDER BY b) FROM t", R},
    {"SELECT lower(name), upper(name), length(name) FROM users", R},
    {"SELECT now(), current_timestamp, current_date", R},
    {"SELECT coalesce(a, b), nullif(a, 0), greatest(a, b) FROM t", R},
    {"SELECT CASE WHEN a > 0 THEN 'pos' ELSE 'neg' END FROM t", R},
    {"SELECT a::text, b::int, c::numeric(10,2) FROM t", R},
    {"SELECT '{1,2,3}'::int[]", R},
    {"SELECT jsonb_build_object('a', 1) -> 'a'", R},
    {"SELECT to_char(now(), 'YYYY-MM-DD')", R},
    {"SELECT extract(epoch FROM now())", R},
    {"SELECT pg_catalog.lower('X')", R},
    {"SELECT version()", R},
    {"SELECT current_user, session_user, current_database()", R},
    {"SELECT pg_is_in_recovery()", P},       // volatile in pg_proc: conservative
    {"SELECT pg_last_wal_replay_lsn()", P},  // likewise
    {"SELECT pg_current_wal_lsn()", P},      // fails on a standby
    {"SELECT pg_current_xact_id()", P},
    {"SELECT string_agg(name, ',') FROM users", R},
    {"SELECT array_agg(x ORDER BY x) FROM t", R},
    {"SELECT * FROM generate_series(1, 10) g", R},
    {"SELECT * FROM unnest(ARRAY[1,2,3])", R},
    {"SELECT * FROM t TABLESAMPLE SYSTEM (10)", R},
    {"SELECT * FROM t LIMIT 5 OFFSET 10", R},
    {"SELECT * FROM t FETCH FIRST 3 ROWS ONLY", R},
    {"SELECT * FROM ONLY parent", R},
    {"SELECT * FROM schema1.table1", R},
    {"SELECT \"Mixed Case\" FROM \"Some Table\"", R},
    {"SELECT $$dollar quoted$$", R},
    {"SELECT $tag$ INSERT INTO t VALUES (1) $tag$", R},
    {"SELECT 'INSERT INTO t VALUES (1)'", R},
    {"SELECT E'it\\'s'", R},
    {"SELECT 1 -- INSERT INTO t\n", R},
    {"SELECT /* DELETE FROM t */ 1", R},
    {"SELECT 1 /* nested /* comment */ still */", R},
    {"VALUES (1, 'a'), (2, 'b')", R},
    {"TABLE accounts", R},
    {"SHOW search_path", R},
    {"SHOW ALL", R},
    {"SHOW transaction_isolation", R},
    {"EXPLAIN SELECT * FROM t", R},
    {"EXPLAIN (COSTS off) SELECT * FROM t", R},
    {"EXPLAIN ANALYZE SELECT * FROM t", R},
    {"EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM t", R},
    {"EXPLAIN (ANALYZE true) SELECT 1", R},
    {"EXPLAIN INSERT INTO t VALUES (1)", R},  // planned, not run
    {"EXPLAIN UPDATE t SET a = 1", R},
    {"EXPLAIN (ANALYZE false) DELETE FROM t", R},
    {"EXPLAIN (ANALYZE 0) DELETE FROM t", R},
    {"EXPLAIN ANALYZE INSERT INTO t VALUES (1)", P},
    {"EXPLAIN (ANALYZE) UPDATE t SET a = 1", P},
    {"EXPLAIN (ANALYZE on) DELETE FROM t", P},
    {"EXPLAIN (ANALYZE 1) DELETE FROM t", P},
    {"EXPLAIN ANALYZE SELECT nextval('s')", P},
    {"SELECT 1; SELECT 2", R},
    {"SELECT 1;", R},
    {"", R},
    {";", R},
    {"   ", R},
    {"-- just a comment", R},

    // Writes
    {"INSERT INTO t VALUES (1)", P},
    {"insert into t (a, b) values ($1, $2)", P},
    {"INSERT INTO t SELECT * FROM u", P},
    {"INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", P},
    {"INSERT INTO t VALUES (1) ON CONFLICT (a) DO UPDATE SET b = excluded.b", P},
    {"INSERT INTO t VALUES (1) RETURNING *", P},
    {"UPDATE t SET a = a + 1 WHERE id = 1", P},
    {"UPDATE pgbench_accounts SET abalance = abalance + $1 WHERE aid = $2", P},
    {"UPDATE t SET a = 1 FROM u WHERE t.id = u.id", P},
    {"DELETE FROM t WHERE id = 1", P},
    {"DELETE FROM t USING u WHERE t.id = u.id RETURNING t.id", P},
    {"MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN UPDATE SET a = u.a WHEN NOT MATCHED THEN INSERT VALUES (u.id, u.a)", P},
    {"TRUNCATE t", P},
    {"TRUNCATE t, u RESTART IDENTITY CASCADE", P},
    {"SELECT 1; INSERT INTO t VALUES (1)", P},
    {"INSERT INTO t VALUES (1); SELECT 1", P},
    {"SELECT 1; SELECT 2; DELETE FROM t", P},

    // Row locks
    {"SELECT * FROM t FOR UPDATE", P},
    {"SELECT * FROM t WHERE id = 1 FOR UPDATE NOWAIT", P},
    {"SELECT * FROM t FOR UPDATE SKIP LOCKED", P},
    {"SELECT * FROM t FOR NO KEY UPDATE", P},
    {"SELECT * FROM t FOR SHARE", P},
    {"SELECT * FROM t FOR KEY SHARE", P},
    {"SELECT * FROM t JOIN u ON true FOR UPDATE OF t", P},
    {"SELECT * FROM (SELECT * FROM t FOR UPDATE) s", P},
    {"WITH l AS (SELECT * FROM t FOR UPDATE) SELECT * FROM l", P},

    // Writable CTEs and SELECT INTO
    {"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x", P},
    {"WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM x", P},
    {"WITH x AS (DELETE FROM t RETURNING *) SELECT count(*) FROM x", P},
    {"WITH a AS (SELECT 1), b AS (DELETE FROM t) SELECT * FROM a", P},
    {"SELECT 1 INTO t2", P},
    {"SELECT * INTO TEMP t3 FROM t", P, tx_effect::none, true},
    {"SELECT * INTO UNLOGGED t4 FROM t", P},

    // Volatile functions
    {"SELECT nextval('s')", P},
    {"SELECT setval('s', 10)", P},
    {"SELECT currval('s')", P},
    {"SELECT random()", P},
    {"SELECT * FROM t ORDER BY random() LIMIT 1", P},
    {"SELECT gen_random_uuid()", P},
    {"SELECT clock_timestamp()", P},
    {"SELECT txid_current()", P},
    {"SELECT pg_sleep(1)", P},
    {"SELECT set_config('search_path', 'x', false)", R},  // a SET by another name
    {"SELECT set_config('search_path', 'x', false), nextval('s')", P},
    {"SELECT set_config('transaction_read_only', 'off', false)", P},
    {"SELECT set_config(name, 'x', false) FROM pg_settings WHERE name = 'y'", P, tx_effect::none, true},
    {"SELECT app.set_config('search_path', 'x', false)", P},
    {"SELECT pg_notify('c', 'p')", P},
    {"SELECT pg_terminate_backend(123)", P},
    {"SELECT pg_catalog.nextval('s')", P},
    {"SELECT lower(x), nextval('s') FROM t", P},
    {"SELECT * FROM t WHERE id = (SELECT nextval('s'))", P},
    {"SELECT my_unknown_function(1)", P},
    {"SELECT app.compute_total(1)", P},
    {"SELECT lo_import('/tmp/x')", P},
    {"VALUES (nextval('s'))", P},
    {"SELECT pg_advisory_xact_lock(1)", P},
    {"SELECT pg_advisory_lock(1)", P, tx_effect::none, true},
    {"SELECT pg_try_advisory_lock(1)", P, tx_effect::none, true},
    {"SELECT pg_advisory_lock_shared(7)", P, tx_effect::none, true},

    // Transactions
    {"BEGIN", R, tx_effect::begin},
    {"begin", R, tx_effect::begin},
    {"BEGIN WORK", R, tx_effect::begin},
    {"BEGIN TRANSACTION", R, tx_effect::begin},
    {"START TRANSACTION", R, tx_effect::begin},
    {"BEGIN ISOLATION LEVEL SERIALIZABLE", R, tx_effect::begin},
    {"BEGIN READ WRITE", R, tx_effect::begin},
    {"START TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ WRITE", R, tx_effect::begin},
    {"BEGIN READ ONLY", R, tx_effect::begin_read_only},
    {"START TRANSACTION READ ONLY", R, tx_effect::begin_read_only},
    {"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", R, tx_effect::begin_read_only},
    {"START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE", R, tx_effect::begin_read_only},
    {"COMMIT", R, tx_effect::end},
    {"END", R, tx_effect::end},
    {"ROLLBACK", R, tx_effect::end},
    {"ABORT", R, tx_effect::end},
    {"COMMIT AND CHAIN", R, tx_effect::end},
    {"SAVEPOINT s1", R},
    {"RELEASE SAVEPOINT s1", R},
    {"ROLLBACK TO SAVEPOINT s1", R},
    {"PREPARE TRANSACTION 'gx1'", P, tx_effect::end},
    {"COMMIT PREPARED 'gx1'", P, tx_effect::end},
    {"ROLLBACK PREPARED 'gx1'", P, tx_effect::end},
    {"SET TRANSACTION READ ONLY", R},
    {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", R},
    {"BEGIN; INSERT INTO t VALUES (1); COMMIT", P, tx_effect::end},
    {"BEGIN; SELECT 1", R, tx_effect::begin},
    {"BEGIN READ ONLY; SELECT 1", R, tx_effect::begin_read_only},

    // Session settings
    {"SET search_path TO app, public", R},
    {"SET statement_timeout = '5s'", R},
    {"SET LOCAL work_mem = '64MB'", R},
    {"SET TIME ZONE 'UTC'", R},
    {"RESET search_path", R},
    {"RESET ALL", R},
    {"SET application_name = 'x'", R},
    {"SET SESSION AUTHORIZATION bob", R, tx_effect::none, true},
    {"SET ROLE admin", R, tx_effect::none, true},
    {"RESET SESSION AUTHORIZATION", R, tx_effect::none, true},
    {"DISCARD ALL", R},
    {"DEALLOCATE ALL", R},
    {"DEALLOCATE p1", R},

    // Cursors
    {"DECLARE c CURSOR FOR SELECT * FROM t", R},
    {"DECLARE c SCROLL CURSOR FOR SELECT 1", R},
    {"DECLARE c CURSOR WITH HOLD FOR SELECT * FROM t", R, tx_effect::none, true},
    {"DECLARE c CURSOR FOR SELECT * FROM t FOR UPDATE", P},
    {"FETCH 10 FROM c", R},
    {"FETCH ALL IN c", R},
    {"MOVE NEXT IN c", R},
    {"CLOSE c", R},
    {"CLOSE ALL", R},

    // SQL-level prepared statements live in the server session
    {"PREPARE p1 AS SELECT 1", R, tx_effect::none, true},
    {"PREPARE p2 (int) AS INSERT INTO t VALUES ($1)", P, tx_effect::none, true},
    {"EXECUTE p1", P, tx_effect::none, true},

    // COPY
    {"COPY t FROM STDIN", P},
    {"COPY t (a, b) FROM STDIN WITH (FORMAT csv)", P},
    {"COPY t FROM '/tmp/data.csv'", P},
    {"COPY t TO STDOUT", R},
    {"COPY (SELECT * FROM t) TO STDOUT WITH CSV HEADER", R},
    {"COPY (SELECT nextval('s')) TO STDOUT", P},
    {"COPY t TO '/tmp/out.csv'", P},
    {"COPY t TO PROGRAM 'gzip > /tmp/x'", P},

    // Notifications
    {"LISTEN events", P, tx_effect::none, true},
    {"NOTIFY events", P},
    {"NOTIFY events, 'payload'", P},
    {"UNLISTEN *", P},

    // Locks, procedures, maintenance
    {"LOCK TABLE t IN ACCESS EXCLUSIVE MODE", P},
    {"LOCK t", P},
    {"CALL my_procedure(1)", P},
    {"DO $$ BEGIN PERFORM 1; END $$", P},
    {"DO 'BEGIN NULL; END'", P},
    {"VACUUM", P},
    {"VACUUM ANALYZE t", P},
    {"ANALYZE t", P},
    {"CLUSTER t USING t_pkey", P},
    {"REINDEX TABLE t", P},
    {"CHECKPOINT", P},
    {"REFRESH MATERIALIZED VIEW mv", P},
    {"SECURITY LABEL ON TABLE t IS 'x'", P},
    {"COMMENT ON TABLE t IS 'note'", P},

    // DDL
    {"CREATE TABLE t (id int primary key)", P},
    {"CREATE TABLE IF NOT EXISTS t (id int)", P},
    {"CREATE TEMP TABLE tt (a int)", P, tx_effect::none, true},
    {"CREATE TEMPORARY TABLE tt2 AS SELECT 1", P, tx_effect::none, true},
    {"CREATE TEMP VIEW tv AS SELECT 1", P, tx_effect::none, true},
    {"CREATE TEMP SEQUENCE ts", P, tx_effect::none, true},
    {"CREATE UNLOGGED TABLE u (a int)", P},
    {"CREATE TABLE t2 AS SELECT * FROM t", P},
    {"CREATE VIEW v AS SELECT 1", P},
    {"CREATE MATERIALIZED VIEW mv AS SELECT 1", P},
    {"CREATE INDEX i ON t (a)", P},
    {"CREATE INDEX CONCURRENTLY i2 ON t (b)", P},
    {"CREATE SEQUENCE s", P},
    {"CREATE SCHEMA s1", P},
    {"CREATE EXTENSION pg_stat_statements", P},
    {"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql", P},
    {"CREATE OR REPLACE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN END $$", P},
    {"CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", P},
    {"CREATE TYPE mood AS ENUM ('sad', 'ok')", P},
    {"CREATE ROLE bob LOGIN", P},
    {"CREATE DATABASE d", P},
    {"ALTER TABLE t ADD COLUMN c int", P},
    {"ALTER TABLE t RENAME TO u", P},
    {"ALTER SYSTEM SET work_mem = '8MB'", P},
    {"ALTER ROLE bob SET search_path = x", P},
    {"DROP TABLE t", P},
    {"DROP TABLE IF EXISTS t CASCADE", P},
    {"DROP INDEX i", P},
    {"GRANT SELECT ON t TO bob", P},
    {"REVOKE ALL ON t FROM bob", P},
    {"IMPORT FOREIGN SCHEMA s FROM SERVER f INTO l", P},

    // Unparseable: primary
    {"SELEC 1", P},
    {"SELECT * FROM", P},
    {"INSERT INTO", P},
    {"SELECT 'unterminated", P},
    {"SELECT $$unterminated", P},
    {"garbage ;; ) (", P},
};

}  // namespace

TEST_CASE("statement classification table", "[routing][classifier]") {
  REQUIRE(table.size() >= 200);
  auto functions = pg15_functions();
  for (const auto& r : table) {
    INFO(r.sql);
    auto c = classify(r.sql, *functions);
    CHECK(c.where == r.where);
    CHECK(c.tx == r.tx);
    CHECK(c.pins_session == r.pins);
  }
}

TEST_CASE("session parameters a statement changes", "[routing][classifier]") {
  function_volatility none;
  struct set_row {
    const char* sql;
    std::vector<std::string> names;
    bool pins;
  };
  const std::vector<set_row> rows{
      {"SET search_path TO app, public", {"search_path"}, false},
      {"SET statement_timeout = '5s'", {"statement_timeout"}, false},
      {"SET TIME ZONE 'UTC'", {"timezone"}, false},
      {"SET search_path TO DEFAULT", {"search_path"}, false},
      {"RESET search_path", {"search_path"}, false},
      {"RESET ALL", {"*"}, false},
      {"DISCARD ALL", {"*"}, false},
      {"SET LOCAL work_mem = '1MB'", {}, false},
      {"SET TRANSACTION READ ONLY", {}, false},
      {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", {}, true},
      {"SET a.b = 1; SET c TO 2", {"a.b", "c"}, false},
      {"SELECT 1", {}, false},
      // set_config with a constant name is a SET; with a computed one, which parameter changes is
      // not known and the session stays where it is.
      {"SELECT pg_catalog.set_config('search_path', '', false);", {"search_path"}, false},
      {"SELECT set_config('Work_Mem', '64MB', false)", {"work_mem"}, false},
      {"SELECT set_config('app.tenant'::text, '7', false)", {"app.tenant"}, false},
      {"SELECT set_config('work_mem', '64MB', true)", {}, false},
      {"SELECT set_config('work_mem', '64MB', 'true')", {"work_mem"}, false},  // not known: asked
      {"SELECT set_config('work_mem', '64MB', $1)", {"work_mem"}, false},
      {"SELECT set_config('a', '1', false), set_config('a', '2', false)", {"a"}, false},
      {"SELECT set_config('x', current_setting('y'), false) FROM t", {"x"}, false},
      {"SELECT set_config(name, 'view, foreign-table', false) FROM pg_settings WHERE name = 'z'", {}, true},
      {"SELECT set_config($1, $2, false)", {}, true},
      {"SELECT set_config('a b', '1', false)", {}, true},
      {"SELECT set_config('x', '1')", {}, false},  // not PostgreSQL's: the server answers 42883
  };
  for (const auto& r : rows) {
    INFO(r.sql);
    auto c = classify(r.sql, none);
    CHECK(c.sets_parameters == r.names);
    CHECK(c.pins_session == r.pins);
    CHECK(c.discards_session == (std::string(r.sql) == "DISCARD ALL"));
  }
}

TEST_CASE("COPY from the client is flagged: its data follows the query", "[routing][classifier]") {
  function_volatility none;
  CHECK(classify("COPY t FROM STDIN", none).copy_in);
  CHECK(classify("COPY t (a, b) FROM STDIN WITH (FORMAT csv)", none).copy_in);
  CHECK(classify("SET x = 1; COPY t FROM STDIN", none).copy_in);
  CHECK_FALSE(classify("COPY t FROM '/tmp/f'", none).copy_in);
  CHECK_FALSE(classify("COPY t FROM PROGRAM 'cat f'", none).copy_in);
  CHECK_FALSE(classify("COPY t TO STDOUT", none).copy_in);
  CHECK_FALSE(classify("INSERT INTO t VALUES (1)", none).copy_in);
}

TEST_CASE("what commits a transaction block is flagged, a rollback is not", "[routing][classifier]") {
  function_volatility none;
  for (const char* sql : {"COMMIT", "commit", "END", "COMMIT AND CHAIN", "END TRANSACTION", "PREPARE TRANSACTION 'gx1'",
                          "INSERT INTO t VALUES (1); COMMIT"}) {
    INFO(sql);
    CHECK(classify(sql, none).commits);
  }
  for (const char* sql : {"ROLLBACK", "ABORT", "ROLLBACK TO SAVEPOINT s", "RELEASE SAVEPOINT s", "COMMIT PREPARED 'gx1'",
                          "ROLLBACK PREPARED 'gx1'", "BEGIN", "INSERT INTO t VALUES (1)", "SELECT 'COMMIT'"}) {
    INFO(sql);
    CHECK_FALSE(classify(sql, none).commits);
  }
}

TEST_CASE("meridian.* settings are flagged and their values read from the statement", "[routing][classifier]") {
  function_volatility none;
  CHECK(classify("SET meridian.consistency = 'read-your-writes'", none).sets_meridian);
  CHECK(classify("SET LOCAL meridian.consistency TO 'primary'", none).sets_meridian);
  CHECK(classify("RESET meridian.routing", none).sets_meridian);
  CHECK_FALSE(classify("SET search_path = app", none).sets_meridian);
  CHECK_FALSE(classify("SELECT 'meridian.consistency'", none).sets_meridian);

  auto s = meridian_settings("SET meridian.consistency = 'read-your-writes'; SET work_mem = '1MB'; RESET meridian.routing");
  REQUIRE(s.size() == 2);
  CHECK(s[0].name == "meridian.consistency");
  CHECK(s[0].value == "read-your-writes");
  CHECK(s[1].name == "meridian.routing");
  CHECK_FALSE(s[1].value);
  CHECK(meridian_settings("SET meridian.consistency TO eventual")[0].value == "eventual");
  CHECK(meridian_settings("SET meridian.consistency = 42")[0].value == "42");
  CHECK_FALSE(meridian_settings("SET meridian.consistency TO DEFAULT")[0].value);
  CHECK(meridian_settings("SELEC garbage").empty());

  CHECK(classify("SHOW meridian.consistency", none).shows_meridian);
  CHECK_FALSE(classify("SHOW work_mem", none).shows_meridian);
  CHECK(meridian_show("SHOW meridian.consistency") == "meridian.consistency");
  CHECK(meridian_show("show MERIDIAN.routing;") == "meridian.routing");
  CHECK_FALSE(meridian_show("SHOW meridian.consistency; SELECT 1"));
  CHECK_FALSE(meridian_show("SHOW work_mem"));
}

TEST_CASE("unparseable statements are flagged and go to the primary", "[routing][classifier]") {
  auto functions = pg15_functions();
  auto c = classify("SELEC 1", *functions);
  CHECK(c.parse_error);
  CHECK(c.where == target::primary);
}

TEST_CASE("without volatility data every function call goes to the primary", "[routing][classifier]") {
  function_volatility none;
  CHECK(classify("SELECT lower('x')", none).where == target::primary);
  CHECK(classify("SELECT 1", none).where == target::any);
  function_volatility allowed;
  allowed.allow("app_read_only_fn");
  CHECK(classify("SELECT app_read_only_fn(1)", allowed).where == target::any);
  allowed.allow("app.price_of");
  CHECK(classify("SELECT app.price_of(1)", allowed).where == target::any);
  CHECK(classify("SELECT other.price_of(1)", allowed).where == target::primary);
  CHECK(classify("SELECT price_of(1)", allowed).where == target::primary);
  function_volatility mixed;
  mixed.add("f", 's');
  mixed.add("f", 'v');  // one volatile overload makes the name volatile
  CHECK(classify("SELECT f(1)", mixed).where == target::primary);
}

TEST_CASE("routing hints in a leading comment", "[routing][classifier]") {
  CHECK(leading_hint("/* meridian:primary */ SELECT 1") == hint::primary);
  CHECK(leading_hint("  /*meridian:replica*/SELECT 1") == hint::replica);
  CHECK(leading_hint("SELECT 1 /* meridian:primary */") == hint::none);
  CHECK(leading_hint("/* something else */ SELECT 1") == hint::none);
  CHECK(leading_hint("/* meridian:primary") == hint::none);
}

TEST_CASE("cache keys ignore literals but keep everything that decides the class", "[routing][cache]") {
  struct pair {
    const char* a;
    const char* b;
    bool same;
  };
  const std::vector<pair> pairs{
      {"SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = 42", true},
      {"SELECT * FROM t WHERE name = 'a'", "SELECT * FROM t WHERE name = 'it''s'", true},
      {"SELECT $$x$$", "SELECT $q$y$q$", true},
      {"SELECT 1.5e3", "SELECT .25", true},
      {"SELECT E'a\\'b'", "SELECT 'c'", true},
      {"SELECT  1", "SELECT 1 -- comment", true},
      {"SELECT /* hint */ 1", "SELECT 1", true},
      {"SELECT * FROM t1", "SELECT * FROM t2", false},
      {"SELECT nextval('s')", "SELECT lower('s')", false},
      {"SELECT \"a b\" FROM t", "SELECT \"a c\" FROM t", false},
      {"SELECT $1", "SELECT $2", false},
      {"SELECT * FROM t FOR UPDATE", "SELECT * FROM t", false},
      {"EXPLAIN (ANALYZE 0) DELETE FROM t", "EXPLAIN (ANALYZE 1) DELETE FROM t", false},
      {"explain analyze select 1", "explain analyze select 2", false},
      // set_config's first literal is the parameter it sets.
      {"SELECT set_config('search_path', '', false)", "SELECT set_config('work_mem', '', false)", false},
      {"select pg_catalog.SET_CONFIG('a', '1', false)", "select pg_catalog.SET_CONFIG('b', '1', false)", false},
      // E'…' takes backslash escapes only when E touches the quote; `e '…'` is a type name and a
      // standard string, so what follows the string stays outside it.
      {"SELECT e 'a\\' , nextval('s')", "SELECT e 'a\\' , lower('s')", false},
      {"SELECT e'a\\' , nextval('s')'", "SELECT e'a\\' , lower('s')'", true},
      // A minus that can only be a sign is part of the number; after an operand it is an
      // operator, and a second one starts a comment.
      {"UPDATE t SET b = b + -5 WHERE id = -7", "UPDATE t SET b = b + 5 WHERE id = 7", true},
      {"SELECT f(-1, -2.5e-3)", "SELECT f(1, 2)", true},
      {"SELECT a -1 FROM t", "SELECT a 1 FROM t", false},
      {"SELECT a - 1 FROM t", "SELECT a 1 FROM t", false},
      {"SELECT 1 = --5\n 2", "SELECT 1 = 2", true},
  };
  for (const auto& p : pairs) {
    INFO(p.a << " vs " << p.b);
    CHECK((cache_key(p.a) == cache_key(p.b)) == p.same);
  }
}

TEST_CASE("literal variants share one cache entry and the same class", "[routing][cache]") {
  classification_cache cache(100, pg15_functions());
  auto a = cache.get("SELECT abalance FROM pgbench_accounts WHERE aid = 1");
  CHECK(cache.misses() == 1);
  for (int i = 2; i < 50; ++i) {
    auto b = cache.get("SELECT abalance FROM pgbench_accounts WHERE aid = " + std::to_string(i));
    CHECK(b == a);
  }
  CHECK(cache.misses() == 1);
  CHECK(cache.hits() == 48);
  CHECK(cache.get("UPDATE pgbench_accounts SET abalance = 1 WHERE aid = 7").where == target::primary);
  CHECK(cache.misses() == 2);
}

TEST_CASE("the classification cache is bounded", "[routing][cache]") {
  classification_cache cache(10, pg15_functions());
  for (int i = 0; i < 100; ++i) (void)cache.get("SELECT * FROM table_" + std::to_string(i));
  CHECK(cache.size() == 10);
  // The most recent entries are still there.
  (void)cache.get("SELECT * FROM table_99");
  CHECK(cache.hits() == 1);
}

TEST_CASE("code of the application's may leave session state behind", "[routing][classifier]") {
  // Which functions of the application's are stateful is read from pg_proc by the proxy
  // (function_catalog_query); what calls them is settled here.
  auto f = std::make_shared<function_volatility>(*pg15_functions());
  f->add("set_tenant", 'v');
  f->mark_stateful("set_tenant");
  f->add("with_tenant", 'v');
  f->add("balance", 'v');
  f->add("tenant_name", 's');
  f->add("lower", 'v');  // an application's lower(), beside PostgreSQL's
  f->mark_stateful("lower");
  // with_tenant calls set_tenant: stateful too; balance only reads.
  f->settle({{"with_tenant", "BEGIN PERFORM Set_Tenant(t); RETURN 1; END"},
             {"balance", "BEGIN RETURN (SELECT abalance FROM a WHERE set_tenant_id = x); END"}});
  const std::vector<std::pair<const char*, bool>> rows{
      {"SELECT set_tenant(7)", true},
      {"SELECT app.set_tenant(7)", true},
      {"SELECT with_tenant(7)", true},
      {"SELECT balance(7)", false},
      {"SELECT * FROM t WHERE id = (SELECT set_tenant(7))", true},
      {"SELECT never_created(1)", true},
      {"DO $$ BEGIN PERFORM set_config('a.b', '1', false); END $$", true},
      {"CALL refresh_cache()", true},
      {"SELECT lower(x) FROM t", true},
      {"SELECT pg_catalog.lower(x) FROM t", false},
      {"SELECT tenant_name()", false},
      {"SELECT nextval('s'), random(), now()", false},
      {"SELECT pg_advisory_lock(1)", false},  // pinned instead
      {"SELECT set_config('search_path', '', false)", false},  // tracked instead
      {"SELECT 1", false},
      {"INSERT INTO t VALUES (1)", false},
      {"INSERT INTO t VALUES (set_tenant(7))", true},
      {"UPDATE t SET x = with_tenant(1)", true},
  };
  for (const auto& [sql, leaves] : rows) {
    INFO(sql);
    CHECK(classify(sql, *f).may_leave_state == leaves);
  }
}

TEST_CASE("a write that fires a stateful trigger may leave session state behind", "[routing][classifier]") {
  auto f = std::make_shared<function_volatility>(*pg15_functions());
  f->add("remember_tenant", 'v');
  f->mark_stateful("remember_tenant");
  f->add("audit_row", 'v');
  f->add_trigger("app.orders", "remember_tenant");
  f->add_trigger("public.items", "audit_row");  // a trigger that leaves nothing
  f->settle({{"audit_row", "BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END"}});
  const std::vector<std::pair<const char*, bool>> rows{
      {"INSERT INTO orders (tenant) VALUES ('a')", true},
      {"INSERT INTO app.orders (tenant) VALUES ('a')", true},
      {"UPDATE orders SET tenant = 'b'", true},
      {"DELETE FROM orders WHERE id = 1", true},
      {"TRUNCATE orders", true},
      {"COPY orders FROM STDIN", true},
      {"WITH x AS (INSERT INTO orders VALUES (1) RETURNING 1) SELECT * FROM x", true},
      {"INSERT INTO other.orders VALUES (1)", false},  // another schema named: not that relation
      {"SELECT * FROM orders", false},                 // a read fires no trigger
      {"COPY orders TO STDOUT", false},
      {"INSERT INTO items VALUES (1)", false},
      {"INSERT INTO audit SELECT * FROM items", false},
  };
  for (const auto& [sql, leaves] : rows) {
    INFO(sql);
    CHECK(classify(sql, *f).may_leave_state == leaves);
  }
  // An event trigger with a stateful function: every DDL may leave state, nothing else.
  auto e = std::make_shared<function_volatility>(*pg15_functions());
  e->add("remember_ddl", 'v');
  e->mark_stateful("remember_ddl");
  e->add_event_trigger("remember_ddl");
  e->settle({});
  CHECK(classify("CREATE TABLE x (id int)", *e).may_leave_state);
  CHECK(classify("ALTER TABLE x ADD COLUMN y int", *e).may_leave_state);
  CHECK(classify("DROP TABLE x", *e).may_leave_state);
  CHECK(classify("CREATE INDEX ON x (id)", *e).may_leave_state);
  CHECK_FALSE(classify("INSERT INTO x VALUES (1)", *e).may_leave_state);
  CHECK_FALSE(classify("SELECT * FROM x", *e).may_leave_state);
  CHECK_FALSE(classify("BEGIN", *e).may_leave_state);
  CHECK_FALSE(classify("CREATE TABLE x (id int)", *f).may_leave_state);  // no event trigger there
  // With the trigger's function not stateful, nothing is.
  function_volatility plain(*pg15_functions());
  plain.add("remember_tenant", 'v');
  plain.add_trigger("app.orders", "remember_tenant");
  plain.settle({{"remember_tenant", "BEGIN RETURN NEW; END"}});
  CHECK_FALSE(classify("INSERT INTO orders VALUES (1)", plain).may_leave_state);
}

TEST_CASE("a DEALLOCATE alone in its query names its statement", "[routing][classifier]") {
  function_volatility none;
  CHECK(classify("DEALLOCATE _pg3_0", none).deallocates);
  CHECK(deallocated_name("DEALLOCATE _pg3_0") == "_pg3_0");
  CHECK(classify("deallocate prepare \"Mixed\"", none).deallocates);
  CHECK(deallocated_name("deallocate prepare \"Mixed\"") == "Mixed");
  CHECK_FALSE(classify("DEALLOCATE ALL", none).deallocates);
  CHECK(deallocated_name("DEALLOCATE ALL").empty());
  CHECK_FALSE(classify("DEALLOCATE a; SELECT 1", none).deallocates);
  CHECK(deallocated_name("DEALLOCATE a; SELECT 1").empty());
  CHECK_FALSE(classify("SELECT 1", none).deallocates);
  CHECK(deallocated_name("SELECT 1").empty());
}

TEST_CASE("reads of what a replica cannot read go to the primary", "[routing][classifier]") {
  auto f = std::make_shared<function_volatility>(*pg15_functions());
  f->add_primary_only_relation("app.cache");     // unlogged, from the catalog
  f->add_primary_only_relation("sessions");      // learned from a statement without a schema
  const std::vector<std::pair<const char*, target>> rows{
      {"SELECT * FROM cache", target::primary},
      {"SELECT * FROM app.cache", target::primary},
      {"SELECT * FROM other.cache", target::any},  // another schema named: not that relation
      {"SELECT * FROM sessions", target::primary},
      {"SELECT * FROM anywhere.sessions", target::primary},  // learned bare: any schema
      {"SELECT count(*) FROM orders o JOIN cache c ON c.id = o.id", target::primary},
      {"SELECT * FROM orders WHERE id IN (SELECT id FROM cache)", target::primary},
      {"WITH x AS (SELECT * FROM cache) SELECT * FROM x", target::primary},
      {"COPY cache TO STDOUT", target::primary},
      {"COPY (SELECT * FROM cache) TO STDOUT", target::primary},
      {"SELECT * FROM orders", target::any},
      {"SELECT cache FROM orders", target::any},  // a column, not the relation
  };
  for (const auto& [sql, where] : rows) {
    INFO(sql);
    CHECK(classify(sql, *f).where == where);
  }
  CHECK_FALSE(classify("SELECT * FROM cache", *pg15_functions()).where == target::primary);
}

TEST_CASE("a statement that makes a relation only the primary can read names it", "[routing][classifier]") {
  auto f = std::make_shared<function_volatility>(*pg15_functions());
  f->add_primary_only_relation("public.cache");
  using names = std::vector<std::string>;
  const std::vector<std::pair<const char*, names>> rows{
      {"CREATE UNLOGGED TABLE t (id int)", {"t"}},
      {"CREATE UNLOGGED TABLE app.t AS SELECT 1 AS x", {"app.t"}},
      {"SELECT 1 AS x INTO UNLOGGED t2", {"t2"}},
      {"ALTER TABLE app.t SET UNLOGGED", {"app.t"}},
      {"CREATE UNLOGGED TABLE p1 PARTITION OF p FOR VALUES IN (1)", {"p1", "p"}},
      {"CREATE VIEW v AS SELECT * FROM cache", {"v"}},
      {"CREATE OR REPLACE VIEW s.v AS SELECT * FROM orders JOIN cache USING (id)", {"s.v"}},
      {"CREATE UNLOGGED SEQUENCE q", {"q"}},
      {"CREATE TABLE t (id int); CREATE UNLOGGED TABLE u (id int)", {"u"}},
      {"CREATE TABLE t (id int)", {}},
      {"CREATE VIEW v AS SELECT * FROM orders", {}},
      {"ALTER TABLE t SET LOGGED", {}},
      {"CREATE TEMP TABLE t (id int)", {}},
      {"SELECT * FROM cache", {}},
  };
  for (const auto& [sql, made] : rows) {
    INFO(sql);
    CHECK(primary_only_relations_made(sql, *f) == made);
    CHECK(classify(sql, *f).makes_primary_only == !made.empty());
  }
}

TEST_CASE("DDL, and what may change objects prepared statements were planned with", "[routing][classifier]") {
  const auto f = pg15_functions();
  const std::vector<std::tuple<const char*, bool, bool>> rows{
      // statement, ddl, invalidates_statements
      {"CREATE TYPE e AS ENUM ('a')", true, false},
      {"CREATE TABLE t (id int)", true, false},
      {"CREATE INDEX ON t (id)", true, false},
      {"DROP TYPE e", true, true},
      {"DROP TABLE t CASCADE", true, true},
      {"ALTER TABLE t ADD COLUMN v e", true, true},
      {"ALTER TYPE e ADD VALUE 'b'", true, true},
      {"ALTER TABLE t RENAME TO u", true, true},
      {"DROP OWNED BY app", true, true},
      {"INSERT INTO t VALUES (1)", false, false},
      {"SELECT * FROM t", false, false},
      {"ROLLBACK", false, false},
  };
  for (const auto& [sql, ddl, invalidates] : rows) {
    INFO(sql);
    const auto c = classify(sql, *f);
    CHECK(c.ddl == ddl);
    CHECK(c.invalidates_statements == invalidates);
  }
}
