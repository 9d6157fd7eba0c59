// Statement text as clients send it, through the real PostgreSQL parser: classification,
// meridian.* settings and SHOWs, and routing hints in leading comments.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "routing/classifier.hpp"

namespace rt = meridian::routing;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const rt::function_volatility functions = [] {
    rt::function_volatility f;
    f.add("now", 's');
    f.add("lower", 'i');
    f.add("nextval", 'v');
    f.allow("my_read_only");
    return f;
  }();
  // The parser reads a C string: what a client sends as a Query never holds a NUL either.
  std::string sql(reinterpret_cast<const char*>(data), size);
  sql = sql.substr(0, sql.find('\0'));
  (void)rt::classify(sql, functions);
  (void)rt::meridian_settings(sql);
  (void)rt::meridian_show(sql);
  (void)rt::leading_hint(sql);
  return 0;
}
