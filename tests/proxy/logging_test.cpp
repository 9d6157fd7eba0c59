#include "proxy/logging.hpp"

#include <catch2/catch.hpp>

using meridian::proxy::json_escape;

TEST_CASE("log messages are escaped for JSON strings", "[proxy][logging]") {
  CHECK(json_escape("plain") == "plain");
  CHECK(json_escape(R"(user "app" from C:\)") == R"(user \"app\" from C:\\)");
  CHECK(json_escape("two\nlines\ttab") == R"(two\nlines\ttab)");
  CHECK(json_escape(std::string("nul\0bell\a", 9)) == R"(nul\u0000bell\u0007)");
  CHECK(json_escape("é ü") == "é ü");  // UTF-8 passes through
}
