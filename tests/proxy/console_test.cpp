#include "proxy/console.hpp"

#include <catch2/catch.hpp>

#include "protocol/backend.hpp"
#include "protocol/framing.hpp"

using namespace meridian::proxy;
namespace pr = meridian::protocol;

TEST_CASE("console commands parse whatever their case and spacing; others are refused", "[proxy][console]") {
  CHECK(parse_console_command("SHOW POOLS") == console_command::show_pools);
  CHECK(parse_console_command("  show\tclients ;") == console_command::show_clients);
  CHECK(parse_console_command("Show Nodes;;") == console_command::show_nodes);
  CHECK(parse_console_command("reload") == console_command::reload);
  CHECK(parse_console_command("PAUSE;") == console_command::pause);
  CHECK_FALSE(parse_console_command("SHOW RELOAD"));  // an action is not a table
  CHECK_FALSE(parse_console_command("POOLS"));        // a table needs SHOW
  CHECK_FALSE(parse_console_command("SHOW POOLS EXTRA"));
  CHECK_FALSE(parse_console_command("SELECT 1"));
  CHECK_THAT(parse_console_command("DROP TABLE x").error(), Catch::Contains("SHOW POOLS"));
  for (auto c : {console_command::show_pools, console_command::shutdown})
    CHECK(console_command_named(console_command_name(c)) == c);
}

TEST_CASE("a console table goes out as RowDescription, DataRows and CommandComplete", "[proxy][console]") {
  table t{{"key", "value"}, {{"a", "1"}, {"b", ""}}};
  std::string out;
  append_table(out, t);
  std::string_view in = out;
  std::string types;
  while (!in.empty()) {
    auto f = pr::next_frame(in, 1 << 20);
    REQUIRE(f.status == pr::frame_status::complete);
    types += f.msg.type;
    if (f.msg.type == 'T') {
      auto d = pr::be::parse_row_description(f.msg.body);
      REQUIRE(d);
      REQUIRE(d->fields.size() == 2);
      CHECK(d->fields[1].name == "value");
      CHECK(d->fields[1].type_oid == 25);
    }
    if (f.msg.type == 'C') CHECK(pr::be::parse_command_complete(f.msg.body)->tag == "SHOW 2");
    in.remove_prefix(f.msg.wire_size);
  }
  CHECK(types == "TDDC");
  CHECK(table_json(t) == R"([{"key":"a","value":"1"},{"key":"b","value":""}])");
}
