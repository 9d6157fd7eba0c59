#include "proxy/user_directory.hpp"

#include <catch2/catch.hpp>

using namespace meridian::proxy;
using namespace std::chrono_literals;

TEST_CASE("the auth query gets the name as a literal that nothing in it can end", "[proxy][auth-query]") {
  const std::string q = "SELECT usename, passwd FROM pg_shadow WHERE usename = $1";
  CHECK(auth_query_sql(q, "app") == "SELECT usename, passwd FROM pg_shadow WHERE usename = $m$app$m$");
  CHECK(auth_query_sql(q, "o'brien") == "SELECT usename, passwd FROM pg_shadow WHERE usename = $m$o'brien$m$");
  // Names that hold the tag, or end so that the tag would close early, get another tag.
  for (std::string name : {"x$m$y", "x$m", "$m$", "a$m0$b$m$"}) {
    auto sql = auth_query_sql("SELECT $1", name);
    INFO(sql);
    const auto open_end = sql.find('$', 8) + 1;  // "SELECT " then the opening tag
    const std::string tag = sql.substr(7, open_end - 7);
    CHECK(sql.substr(open_end).find(tag) == name.size());
    CHECK(sql.substr(open_end, name.size()) == name);
    CHECK(sql.ends_with(tag));
  }
  // $10 is not $1.
  CHECK(auth_query_sql("SELECT $1, $10", "u") == "SELECT $m$u$m$, $10");
}

TEST_CASE("what the auth query returned becomes a user, or none", "[proxy][auth-query]") {
  auto u = user_from_rows("app", {{"app", "SCRAM-SHA-256$4096:c2FsdA==$a:b"}});
  REQUIRE(u);
  CHECK(u->secret == "SCRAM-SHA-256$4096:c2FsdA==$a:b");
  CHECK(u->from_auth_query);
  CHECK_FALSE(user_from_rows("app", {}));
  CHECK_FALSE(user_from_rows("app", {{"app", ""}}));       // NULL password
  CHECK_FALSE(user_from_rows("app", {{"other", "md5x"}}));  // a row for someone else
}

TEST_CASE("looked-up users are cached for the TTL; proven keys stay with their secret", "[proxy][auth-query]") {
  user_directory d(10s);
  const auto t0 = user_directory::clock::now();
  CHECK_FALSE(d.cached("app", t0));
  d.store("ghost", nullptr, t0);
  REQUIRE(d.cached("ghost", t0));
  CHECK_FALSE(*d.cached("ghost", t0));  // known not to exist
  CHECK_FALSE(d.cached("ghost", t0 + 11s));

  auto u = user_from_rows("app", {{"app", "md5aaaa"}});
  d.store("app", u, t0);
  meridian::protocol::scram_keys keys{};
  keys.client_key[0] = 7;
  auto keyed = d.with_keys(u, keys);
  REQUIRE(keyed->server_scram_keys);
  CHECK((*d.cached("app", t0))->server_scram_keys);
  // Refreshed with the same secret: the keys carry over. With a new secret: gone.
  d.store("app", user_from_rows("app", {{"app", "md5aaaa"}}), t0 + 20s);
  CHECK((*d.cached("app", t0 + 20s))->server_scram_keys);
  d.store("app", user_from_rows("app", {{"app", "md5bbbb"}}), t0 + 40s);
  CHECK_FALSE((*d.cached("app", t0 + 40s))->server_scram_keys);
  // Keys proven against the old secret no longer attach to the directory's entry.
  (void)d.with_keys(keyed, keys);
  CHECK_FALSE((*d.cached("app", t0 + 40s))->server_scram_keys);
}

TEST_CASE("the directory stays bounded", "[proxy][auth-query]") {
  user_directory d(10s, 50);
  const auto t0 = user_directory::clock::now();
  for (int i = 0; i < 500; ++i) d.store("u" + std::to_string(i), nullptr, t0);
  CHECK(d.size() <= 50);
}
