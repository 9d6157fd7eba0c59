#include <catch2/catch.hpp>

#include <random>

#include "routing/classification_cache.hpp"
#include "routing/recent_shapes.hpp"

using namespace meridian::routing;

namespace {

volatility_ptr functions() {
  auto f = std::make_shared<function_volatility>();
  f->add("lower", 'i');
  f->add("nextval", 'v');
  return f;
}

// Remembers `sql` as the cache classified it; returns that classification.
classification remember(recent_shapes& shapes, classification_cache& cache, const std::string& sql) {
  auto c = cache.get(sql);
  shapes.remember(sql, cache.literals(), c, cache.generation());
  return c;
}

}  // namespace

TEST_CASE("a statement differing in its literals only is recognised", "[routing][shapes]") {
  classification_cache cache(100, functions());
  recent_shapes shapes;
  const auto c = remember(shapes, cache, "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;");
  CHECK(c.where == target::any);
  for (const char* same : {"SELECT abalance FROM pgbench_accounts WHERE aid = 7;",
                           "SELECT abalance FROM pgbench_accounts WHERE aid = 1.5e3;",
                           "SELECT abalance FROM pgbench_accounts WHERE aid = 123456789012;",
                           "SELECT abalance FROM pgbench_accounts WHERE aid = -7;"}) {
    INFO(same);
    const auto* found = shapes.find(same, cache.generation());
    REQUIRE(found);
    CHECK(*found == c);
  }
  for (const char* other : {"SELECT abalance FROM pgbench_accounts WHERE aid = '7';",  // a string there
                            "SELECT abalance FROM pgbench_accounts WHERE aid = .5;",   // begins otherwise
                            "SELECT abalance FROM pgbench_accounts WHERE aid = 7",     // no semicolon
                            "SELECT abalance FROM pgbench_accounts WHERE aid =  7;",   // other spacing
                            "SELECT abalance FROM pgbench_accounts WHERE aid = x;",
                            "SELECT abalance FROM pgbench_accounts WHERE aid = 7; DELETE FROM t;",
                            "UPDATE pgbench_accounts SET abalance = 1 WHERE aid = 7;", "SELECT", ""}) {
    INFO(other);
    CHECK_FALSE(shapes.find(other, cache.generation()));
  }
}

TEST_CASE("a negative number where a sign can only be unary is the same shape", "[routing][shapes]") {
  classification_cache cache(100, functions());
  recent_shapes shapes;
  const auto c = remember(shapes, cache, "UPDATE pgbench_tellers SET tbalance = tbalance + 2412 WHERE tid = 3;");
  for (const char* same : {"UPDATE pgbench_tellers SET tbalance = tbalance + -4877 WHERE tid = 9;",
                           "UPDATE pgbench_tellers SET tbalance = tbalance + -1.5e-3 WHERE tid = -1;"}) {
    INFO(same);
    const auto* found = shapes.find(same, cache.generation());
    REQUIRE(found);
    CHECK(*found == c);
  }
  for (const char* other : {"UPDATE pgbench_tellers SET tbalance = tbalance + - 4877 WHERE tid = 9;",  // an operator
                            "UPDATE pgbench_tellers SET tbalance = tbalance + -.5 WHERE tid = 9;",
                            "UPDATE pgbench_tellers SET tbalance = tbalance + --4877\n WHERE tid = 9;"}) {
    INFO(other);
    CHECK_FALSE(shapes.find(other, cache.generation()));
  }
  // After an operand the minus is an operator: `a -1` is not `a 1` with a sign.
  remember(shapes, cache, "SELECT a -1 FROM t");
  CHECK_FALSE(shapes.find("SELECT a 1 FROM t", cache.generation()));
  CHECK(shapes.find("SELECT a -2 FROM t", cache.generation()));
}

TEST_CASE("strings, escape strings and several literals in one statement", "[routing][shapes]") {
  classification_cache cache(100, functions());
  recent_shapes shapes;
  const auto c = remember(shapes, cache, "INSERT INTO t VALUES (1, 'a', E'b\\'c', .5) RETURNING lower('x')");
  CHECK(c.where == target::primary);
  const auto* found =
      shapes.find("INSERT INTO t VALUES (20000, 'it''s', e'\\'', .125) RETURNING lower('')", cache.generation());
  REQUIRE(found);
  CHECK(*found == c);
  // An escape string where a plain one was: not the same kind of literal.
  CHECK_FALSE(shapes.find("INSERT INTO t VALUES (1, E'a', E'b', .5) RETURNING lower('x')", cache.generation()));
}

TEST_CASE("text the key keeps, or does not take apart, is matched as text", "[routing][shapes]") {
  classification_cache cache(100, functions());
  recent_shapes shapes;
  // EXPLAIN keeps its literals in the key: only the same text is recognised.
  remember(shapes, cache, "EXPLAIN (ANALYZE 0) DELETE FROM t");
  CHECK(shapes.find("EXPLAIN (ANALYZE 0) DELETE FROM t", cache.generation()));
  CHECK_FALSE(shapes.find("EXPLAIN (ANALYZE 1) DELETE FROM t", cache.generation()));
  // So does set_config: its first literal names the parameter.
  remember(shapes, cache, "SELECT set_config('search_path', '', false)");
  CHECK(shapes.find("SELECT set_config('search_path', '', false)", cache.generation()));
  CHECK_FALSE(shapes.find("SELECT set_config('work_mem', '', false)", cache.generation()));
  // Dollar-quoted strings are not matched as literals, the numbers beside them are.
  remember(shapes, cache, "SELECT $q$a$q$, 1");
  CHECK(shapes.find("SELECT $q$a$q$, 2", cache.generation()));
  CHECK_FALSE(shapes.find("SELECT $q$b$q$, 2", cache.generation()));
}

TEST_CASE("the least recently used shape makes room; new function volatilities forget them all",
          "[routing][shapes]") {
  classification_cache cache(100, functions());
  recent_shapes shapes;
  CHECK_FALSE(shapes.find("SELECT 1", cache.generation()));  // nothing remembered, nothing allocated
  CHECK(shapes.size() == 0);
  auto statement = [](std::size_t i) { return "SELECT c" + std::to_string(i) + " FROM t WHERE id = 1"; };
  for (std::size_t i = 0; i < recent_shapes::capacity; ++i) remember(shapes, cache, statement(i));
  CHECK(shapes.size() == recent_shapes::capacity);
  CHECK(shapes.find("SELECT c0 FROM t WHERE id = 2", cache.generation()));  // c0 used again: c1 is oldest
  remember(shapes, cache, statement(100));
  CHECK(shapes.find("SELECT c0 FROM t WHERE id = 3", cache.generation()));
  CHECK_FALSE(shapes.find("SELECT c1 FROM t WHERE id = 3", cache.generation()));
  CHECK(shapes.find("SELECT c100 FROM t WHERE id = 3", cache.generation()));

  const auto before = cache.generation();
  cache.set_functions(functions());
  CHECK(cache.generation() != before);
  CHECK_FALSE(shapes.find("SELECT c0 FROM t WHERE id = 3", cache.generation()));

  std::string longer = "SELECT 1 " + std::string(recent_shapes::longest, ' ');
  remember(shapes, cache, longer);
  CHECK_FALSE(shapes.find(longer, cache.generation()));
}

TEST_CASE("a statement recognised by shape always has the remembered one's cache key", "[routing][shapes]") {
  // Random statements from tokens that exercise every turn of cache_key's scan, glued with and
  // without space, and variants whose literals are swapped for others of any kind: whenever a
  // variant is recognised, its cache key must be the original's (the cache would have answered
  // the same). Variants that keep each literal's kind and spacing are, most of them, recognised
  // (not all: a number glued to a word is part of an identifier).
  const std::vector<std::string> words{"SELECT", "FROM", "t", "e", "E", "x1", "a$b", "explain", "$", "$1", "$2"};
  const std::vector<std::string> literals{"1", "42", "1.5e3", "1e+5", "7_000", ".25", "-3", "-1.5e-3", "-.5", "- 7",
                                          "'a'", "'it''s'", "''",
                                          "E'a\\'b'", "e'x'", "'unterminated", "$$x$$", "$q$y$q$", "$z$open"};
  const std::vector<std::string> others{",", "(", ")", ".", "=", "-", "/", "*", "+", ";", "'", "\"",
                                        "-- c\n", "/* c */", "/* a /* b */ c */", "/* open", "\"a b\"", "\"x\"\"y\"",
                                        "--", "\\", "e'", "E\\"};
  const std::vector<std::string> gaps{" ", "  ", "\n", "", ""};
  std::mt19937 random(20261202);
  auto pick = [&](const std::vector<std::string>& from) { return from[random() % from.size()]; };
  classification_cache cache(100000, functions());
  std::size_t recognised = 0;
  std::size_t kept_kind = 0;
  for (int round = 0; round < 20000; ++round) {
    struct token {
      std::string text;
      bool literal;
    };
    std::vector<token> tokens;
    const int count = 1 + static_cast<int>(random() % 10);
    for (int i = 0; i < count; ++i) {
      const auto kind = random() % 3;
      tokens.push_back({kind == 0 ? pick(words) : kind == 1 ? pick(literals) : pick(others), kind == 1});
    }
    std::string a, b, same_kind;
    for (const auto& t : tokens) {
      const auto gap = pick(gaps);
      a += t.text + gap;
      b += (t.literal ? pick(literals) : t.text) + gap;
      std::string like = t.text;
      if (t.literal && (t.text[0] >= '0' && t.text[0] <= '9')) like = std::to_string(random() % 100000);
      if (t.literal && t.text == "-3") like = random() % 2 ? "-" + std::to_string(random() % 100) : std::to_string(random() % 100);
      if (t.literal && t.text == "'a'") like = "'" + std::string(random() % 4, 'q') + "'";
      same_kind += like + gap;
    }
    recent_shapes shapes;
    remember(shapes, cache, a);
    const auto key = cache_key(a);
    INFO("remembered: " << a);
    if (shapes.find(b, cache.generation())) {
      ++recognised;
      INFO("recognised: " << b);
      REQUIRE(cache_key(b) == key);
    }
    if (shapes.find(same_kind, cache.generation())) {
      INFO("recognised: " << same_kind);
      REQUIRE(cache_key(same_kind) == key);
      ++kept_kind;
    }
  }
  // The property was put to the test, not passed by recognising nothing.
  CHECK(recognised > 2000);
  CHECK(kept_kind > 10000);
}
