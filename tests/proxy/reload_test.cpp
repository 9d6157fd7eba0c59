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

config aligned(const config& running, const std::string& text) {
  auto next = load_config_string(text);
  align_nodes(running, next);
  return next;
}

std::vector<std::string> names_of(const config& c) {
  std::vector<std::string> out;
  for (const auto& n : c.nodes) out.push_back(n.name + (n.removed ? " (removed)" : ""));
  return out;
}
}  // namespace

TEST_CASE("a reload may change pools, limits, users, logging and nodes, not the listener", "[proxy][reload]") {
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
  const auto moved = aligned(running, with(base, "host: 10.0.0.2", "host: 10.0.0.3"));
  CHECK_FALSE(needs_restart(running, moved));
  CHECK(changed_settings(running, moved) == std::vector<std::string>{"node eu-west-1"});
  CHECK(needs_restart(running, load_config_string(with(base, "region: eu-west-1", "region: us-east-1"))) == "region");
}

TEST_CASE("nodes keep their ids across reloads: removed ones stay flagged, new ones come after", "[proxy][reload]") {
  const auto running = load_config_string(base);
  // Listed in another order, with a third node: the first two keep their places.
  auto next = aligned(running, with(base, "nodes:\n", "nodes:\n  - { name: ap-southeast-1, host: 10.0.0.3, role: replica, max_lag: 50ms }\n"));
  auto swapped = with(with(base, "us-east-1, host: 10.0.0.1", "XX"), "eu-west-1, host: 10.0.0.2", "us-east-1, host: 10.0.0.1");
  swapped = with(swapped, "XX", "eu-west-1, host: 10.0.0.2");
  CHECK(names_of(aligned(running, swapped)) == std::vector<std::string>{"us-east-1", "eu-west-1"});
  CHECK(names_of(next) == std::vector<std::string>{"us-east-1", "eu-west-1", "ap-southeast-1"});
  CHECK(next.nodes[2].id.value == 2);
  CHECK(next.nodes[2].max_lag == std::chrono::milliseconds(50));
  CHECK(next.node_tls.size() == 3);
  CHECK(changed_settings(running, next) == std::vector<std::string>{"node ap-southeast-1"});

  // eu-west-1 taken out: it stays at id 1, flagged; ap-southeast-1 stays at 2.
  const auto without_eu = with(base, "  - { name: eu-west-1, host: 10.0.0.2, port: 5432, role: replica }\n",
                               "  - { name: ap-southeast-1, host: 10.0.0.3, role: replica }\n");
  auto after = aligned(next, without_eu);
  CHECK(names_of(after) == std::vector<std::string>{"us-east-1", "eu-west-1 (removed)", "ap-southeast-1"});
  CHECK(after.nodes[2].max_lag == std::chrono::milliseconds(200));  // the file's value now
  CHECK_FALSE(needs_restart(next, after));
  CHECK(changed_settings(next, after) == std::vector<std::string>{"node ap-southeast-1", "node eu-west-1"});

  // Listed again: back at id 1.
  auto back = aligned(after, with(base, "nodes:\n", "nodes:\n  - { name: ap-southeast-1, host: 10.0.0.3, role: replica }\n"));
  CHECK(names_of(back) == std::vector<std::string>{"us-east-1", "eu-west-1", "ap-southeast-1"});
}

TEST_CASE("a reload cannot take Meridian past its node limit", "[proxy][reload]") {
  auto running = load_config_string(base);
  // 63 nodes more, one at a time removed again: ids are never reused for other names.
  std::string list;
  for (std::size_t i = 0; i < meridian::routing::max_nodes - 2; ++i)
    list += "  - { name: r" + std::to_string(i) + ", host: 10.1.0.1, role: replica }\n";
  auto many = aligned(running, with(base, "nodes:\n", "nodes:\n" + list));
  CHECK(many.nodes.size() == meridian::routing::max_nodes);
  // One more name, while every other node is still known: refused with the reason.
  CHECK_THROWS_WITH(aligned(many, with(base, "nodes:\n", "nodes:\n  - { name: one-too-many, host: 10.1.0.2, role: replica }\n")),
                    Catch::Contains("at most 64 nodes"));
}
