#pragma once
// Hashing for unordered containers keyed by std::string that are looked up by string_view
// (with std::equal_to<>): a name read from a message is found without copying it into a
// string, which for names past the short-string size is an allocation per lookup.
#include <functional>
#include <string_view>

namespace meridian::protocol {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

}  // namespace meridian::protocol
