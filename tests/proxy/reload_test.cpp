#include "proxy/reload.hpp"

#include <catch2/catch.hpp>

using namespace meridian::proxy;

namespace {
const std::string base = R"(
region: eu-west-1
listen: { port: 6432 }
nodes:
  - { name: us-east-1, host: 10.0.0.1, port: 5432, role: primary }
  - { name: eu-west-1, host: 10.0.0.2, port: 5432, role: replica }
pool: { size: 20 }
limits: { max_clients: 100 }
users:
  - { name: app, password: one }
)";
std::string with(std::string text, const std::string& from, const std::string& to) {
  text.replace(text.find(from), from.size(), to);
  return text;
}
}  // namespace

TEST_CASE("a reload may change pools, limits, users and logging, not the listener or the nodes", "[proxy][reload]") {
  const auto running = load_config_string(base);
  CHECK_FALSE(needs_restart(running, load_config_string(base)));
  CHECK(changed_settings(running, load_config_string(base)).empty());

  auto live = load_config_string(with(with(with(base, "size: 20", "size: 5"), "max_clients: 100", "max_clients: 7"),
                                      "password: one", "password: two"));
  CHECK_FALSE(needs_restart(running, live));
  CHECK(changed_settings(running, live) ==
        std::vector<std::string>{"limits.max_clients", "pool.size", "users[app].password"});
  // The secret itself is named, never shown.
  for (const auto& s : changed_settings(running, live)) CHECK(s.find("two") == std::string::npos);

  CHECK(needs_restart(running, load_config_string(with(base, "port: 6432", "port: 6433"))) == "listen");
  CHECK(needs_restart(running, load_config_string(with(base, "host: 10.0.0.2", "host: 10.0.0.3"))) == "nodes");
  CHECK(needs_restart(running, load_config_string(with(base, "region: eu-west-1", "region: us-east-1"))) == "region");
}
