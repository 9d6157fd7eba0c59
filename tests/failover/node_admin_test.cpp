#include "failover/node_admin.hpp"

#include <catch2/catch.hpp>

using meridian::failover::node_admin;

TEST_CASE("a repointed replica is checked against the host and port its primary_conninfo names") {
  meridian::routing::node primary;
  primary.name = "eu-west-1";
  primary.host = "10.0.0.2";
  primary.port = 5432;
  struct row {
    const char* conninfo;
    const char* host;
    const char* port;
  };
  const row rows[] = {
      {"host=10.0.0.2 port=5433 user=replicator application_name=ap", "10.0.0.2", "5433"},
      {"host=db-eu.internal user=replicator", "db-eu.internal", "5432"},
      {"user=replicator", "10.0.0.2", "5432"},
      {"host='quoted host' port = 6000", "quoted host", "6000"},
      {"this is not a conninfo", "10.0.0.2", "5432"},
  };
  for (const auto& r : rows) {
    INFO(r.conninfo);
    auto [host, port] = node_admin::conninfo_target(r.conninfo, primary);
    CHECK(host == r.host);
    CHECK(port == r.port);
  }
}
