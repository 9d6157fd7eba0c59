// The recordings themselves: every driver and flow the session core is tested over is here, and
// every message in them frames as PostgreSQL frames it.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "protocol/framing.hpp"
#include "protocol/message_types.hpp"
#include "tests/recordings/pgtrace.hpp"

using namespace meridian;
using meridian::testing::side;

namespace {

const std::filesystem::path recordings_dir = std::filesystem::path(MERIDIAN_TEST_DATA_DIR) / "recordings";

bool backend_known(char t) {
  namespace b = protocol::backend_type;
  for (char k : {b::authentication, b::backend_key_data, b::bind_complete, b::close_complete, b::command_complete,
                 b::copy_data, b::copy_done, b::copy_in_response, b::copy_out_response, b::copy_both_response,
                 b::data_row, b::empty_query_response, b::error_response, b::function_call_response,
                 b::negotiate_protocol_version, b::no_data, b::notice_response, b::notification_response,
                 b::parameter_description, b::parameter_status, b::parse_complete, b::portal_suspended,
                 b::ready_for_query, b::row_description})
    if (t == k) return true;
  return false;
}

}  // namespace

TEST_CASE("recordings: every driver and flow the session core is tested over is recorded") {
  const auto traces = meridian::testing::read_all_traces(recordings_dir);
  std::set<std::string> names;
  for (const auto& t : traces) names.insert(t.name);
  for (const char* wanted :
       {"asyncpg/prepare-then-insert", "asyncpg/fetch", "asyncpg/executemany", "asyncpg/copy-records",
        "asyncpg/copy-to-table", "asyncpg/prepare-then-copy", "asyncpg/cursor", "psycopg/plain",
        "psycopg/pipeline-autocommit", "psycopg/pipeline-error", "psycopg/copy", "psycopg/set-config",
        "psycopg/prepared-cache", "psycopg/terminated", "pgx/batch", "pgx/copy-from", "pgx/query",
        "jdbc/batch", "jdbc/prepare-threshold", "node/query", "node/connect-end", "libpq/pipeline",
        "libpq/execparams-copy", "psql/statements", "psql/copy", "raw/two-queries",
        "raw/parse-flush-then-query", "pg_dump/custom", "pg_restore/custom"}) {
    INFO(wanted);
    CHECK(names.count(wanted) == 1);
  }
}

TEST_CASE("recordings: every message frames as PostgreSQL frames it") {
  // The flows whose client sent bytes that are no message, on purpose.
  const std::set<std::string> garbled{"node/connect-end", "raw/terminate-before-startup", "raw/bad-startup-length"};
  std::map<std::string, int> unframed;
  for (const auto& t : meridian::testing::read_all_traces(recordings_dir)) {
    REQUIRE_FALSE(t.conversations.empty());
    for (const auto& c : t.conversations) {
      REQUIRE_FALSE(c.messages.empty());
      for (std::size_t i = 0; i < c.messages.size(); ++i) {
        const auto& m = c.messages[i];
        INFO(t.name << " connection " << c.number << " message " << i);
        if (m.typed) {
          const auto r = protocol::next_frame(m.bytes, 1 << 30);
          REQUIRE(r.status == protocol::frame_status::complete);
          CHECK(r.msg.wire_size == m.bytes.size());
          if (m.from == side::client)
            CHECK(protocol::frontend_type::known(r.msg.type));
          else
            CHECK(backend_known(r.msg.type));
        } else if (m.bytes.size() == 1) {
          CHECK(m.from == side::server);
          CHECK((m.bytes == "N" || m.bytes == "G"));
        } else {
          const auto r = protocol::next_startup_frame(m.bytes, 10000);
          if (r.status == protocol::frame_status::complete && r.msg.wire_size == m.bytes.size()) continue;
          // Not a packet: only as the last thing a client sent.
          ++unframed[t.name];
          CHECK(m.from == side::client);
          CHECK(std::none_of(c.messages.begin() + static_cast<std::ptrdiff_t>(i) + 1, c.messages.end(),
                             [](const auto& later) { return later.from == side::client; }));
        }
      }
    }
  }
  for (const auto& name : garbled) CHECK(unframed[name] == 1);
  CHECK(unframed.size() == garbled.size());
}
