// Classification cost per statement: a cache miss runs PostgreSQL's parser and walks the tree;
// a hit blanks literals and looks the text up. Prints nanoseconds per statement (median of
// rounds) for both, with PostgreSQL 15's function volatilities loaded.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "routing/classification_cache.hpp"
#include "routing/classifier.hpp"

using namespace meridian::routing;
using clock_type = std::chrono::steady_clock;

int main(int argc, char** argv) {
  const std::string data = argc > 1 ? argv[1] : "tests/routing/pg15_function_volatility.txt";
  auto functions = std::make_shared<function_volatility>();
  std::ifstream in(data);
  std::string name;
  char v;
  while (in >> name >> v) functions->add(name, v);
  if (functions->size() == 0) {
    std::fprintf(stderr, "no function data in %s\n", data.c_str());
    return 1;
  }
  const std::vector<std::string> statements{
      "SELECT abalance FROM pgbench_accounts WHERE aid = 48213",
      "UPDATE pgbench_accounts SET abalance = abalance + -2314 WHERE aid = 7731",
      "SELECT u.id, u.name, count(o.id) FROM users u LEFT JOIN orders o ON o.user_id = u.id "
      "WHERE u.created_at > now() - interval '7 days' GROUP BY u.id, u.name ORDER BY 3 DESC LIMIT 20",
      "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (3, 1, 5512, 331, CURRENT_TIMESTAMP)",
      "BEGIN",
  };
  constexpr int rounds = 7;
  constexpr int iterations = 20000;
  auto median = [](std::vector<double> samples) {
    std::sort(samples.begin(), samples.end());
    return samples[samples.size() / 2];
  };
  std::vector<double> miss, hit;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = clock_type::now();
    for (int i = 0; i < iterations / 10; ++i)
      for (const auto& s : statements) (void)classify(s, *functions);
    auto t1 = clock_type::now();
    const double classified = static_cast<double>(iterations / 10) * static_cast<double>(statements.size());
    miss.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / classified);

    classification_cache cache(1000, functions);
    for (const auto& s : statements) (void)cache.get(s);
    // Literal variants of the same statements: all hits.
    std::vector<std::string> variants;
    for (int k = 0; k < 100; ++k) variants.push_back("SELECT abalance FROM pgbench_accounts WHERE aid = " + std::to_string(k * 7919));
    t0 = clock_type::now();
    for (int i = 0; i < iterations; ++i) (void)cache.get(variants[static_cast<std::size_t>(i % 100)]);
    t1 = clock_type::now();
    hit.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / iterations);
  }
  std::printf("| case | ns per statement (median of %d rounds) |\n|---|---|\n", rounds);
  std::printf("| cache miss (parse + walk), mixed statements | %.0f |\n", median(miss));
  std::printf("| cache hit (literal-insensitive key + lookup), pgbench select | %.0f |\n", median(hit));
  return 0;
}
