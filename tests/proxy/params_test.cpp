#include <catch2/catch.hpp>

#include "proxy/params.hpp"
#include "proxy/statement_cache.hpp"

using namespace meridian::proxy;

TEST_CASE("parameter sync SQL brings a server to the client's parameters", "[proxy][params]") {
  const param_map baseline{{"application_name", ""}, {"timezone", "UTC"}, {"server_version", "15.18"}};
  struct row {
    param_map wanted;
    param_map current;
    std::string sql;
  };
  const std::vector<row> rows{
      {{}, baseline, ""},
      {{{"application_name", "psql"}}, baseline, "SELECT pg_catalog.set_config('application_name', 'psql', false);"},
      {{{"application_name", "psql"}}, {{"application_name", "psql"}, {"timezone", "UTC"}}, ""},
      // another client's setting is reset
      {{}, {{"application_name", "other"}, {"timezone", "UTC"}}, "RESET application_name;"},
      // a setting the server does not report, set for a previous client
      {{}, {{"application_name", ""}, {"timezone", "UTC"}, {"extra_float_digits", "3"}}, "RESET extra_float_digits;"},
      {{{"timezone", "Europe/Dublin"}}, baseline, "SELECT pg_catalog.set_config('timezone', 'Europe/Dublin', false);"},
      {{{"application_name", "it's"}}, baseline, "SELECT pg_catalog.set_config('application_name', 'it''s', false);"},
      {{{"application_name", "a\\b"}}, baseline, "SELECT pg_catalog.set_config('application_name', E'a\\\\b', false);"},
  };
  for (const auto& r : rows) CHECK(parameter_sync_sql(r.wanted, r.current, baseline) == r.sql);
}

TEST_CASE("parameter sets are shared by identity while held", "[proxy][params]") {
  param_sets sets;
  const param_map a{{"application_name", "pgbench"}, {"client_encoding", "UTF8"}};
  auto first = sets.intern(a);
  auto second = sets.intern(a);
  CHECK(first == second);
  CHECK(*first == a);
  auto other = sets.intern({{"application_name", "psql"}, {"client_encoding", "UTF8"}});
  CHECK(other != first);
  CHECK(sets.size() == 2);

  // Changing one value gives the set equal to the result, shared with whoever holds it.
  auto changed = sets.with(first, "application_name", "psql");
  CHECK(changed == other);
  CHECK(first->at("application_name") == "pgbench");  // sets never change in place
  CHECK(sets.with(first, "application_name", "pgbench") == first);
  auto added = sets.with(first, "timezone", "UTC");
  CHECK(added->size() == 3);
  CHECK(added != first);

  // A set nobody holds is forgotten; interning it again makes a new one.
  added.reset();
  CHECK(sets.size() == 2);
  other.reset();
  changed.reset();
  CHECK(sets.size() == 1);
  CHECK(sets.intern({}) != nullptr);
  CHECK(sets.intern({})->empty());
}

TEST_CASE("many distinct parameter sets come and go without piling up", "[proxy][params]") {
  param_sets sets;
  auto kept = sets.intern({{"application_name", "kept"}});
  for (int i = 0; i < 10000; ++i) {
    auto s = sets.intern({{"application_name", "client " + std::to_string(i)}});
    REQUIRE(s->at("application_name") == "client " + std::to_string(i));
  }
  CHECK(sets.size() == 1);
  CHECK(sets.intern({{"application_name", "kept"}}) == kept);
}

TEST_CASE("startup options", "[proxy][params]") {
  param_map out;
  CHECK(parse_startup_options("-c search_path=app -csynchronous_commit=off --statement-timeout=5s", out));
  CHECK(out["search_path"] == "app");
  CHECK(out["synchronous_commit"] == "off");
  CHECK(out["statement_timeout"] == "5s");
  param_map escaped;
  CHECK(parse_startup_options("-c application_name=a\\ b", escaped));
  CHECK(escaped["application_name"] == "a b");
  param_map bad;
  CHECK_FALSE(parse_startup_options("-d 5", bad));
  CHECK_FALSE(parse_startup_options("-c novalue", bad));
  CHECK_FALSE(parse_startup_options("-c bad;name=1", bad));
}

TEST_CASE("parameter names", "[proxy][params]") {
  CHECK(is_valid_parameter_name("application_name"));
  CHECK(is_valid_parameter_name("meridian.consistency"));
  CHECK_FALSE(is_valid_parameter_name("x; DROP TABLE t"));
  CHECK_FALSE(is_valid_parameter_name(""));
  CHECK(canonical_parameter_name("datestyle") == "DateStyle");
  CHECK(canonical_parameter_name("search_path") == "search_path");
  CHECK(lower("TimeZone") == "timezone");
}

TEST_CASE("statement cache evicts the least recently used", "[proxy][statements]") {
  statement_cache c(2);
  CHECK_FALSE(c.insert("a"));
  CHECK_FALSE(c.insert("b"));
  CHECK(c.touch("a"));  // b is now the oldest
  auto evicted = c.insert("c");
  REQUIRE(evicted);
  CHECK(*evicted == "b");
  CHECK(c.touch("a"));
  CHECK(c.touch("c"));
  CHECK_FALSE(c.touch("b"));
  c.erase("a");
  CHECK(c.size() == 1);
  CHECK_FALSE(c.insert("c"));  // already there: nothing evicted
  c.clear();
  CHECK(c.size() == 0);
}
