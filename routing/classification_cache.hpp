#pragma once
// Classification results by statement text with literals blanked out, so `WHERE id = 1` and
// `WHERE id = 2` share one entry and a repeated statement costs a scan and a hash lookup.
// Bounded, least recently used out first. One per worker thread: no locking.
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "routing/classifier.hpp"

namespace meridian::routing {

// A literal the key blanks, by how it begins: a statement with a literal of the same kind in
// the same place (and the same text around it) has the same key (see recent_shapes).
enum class literal_kind : std::uint8_t {
  number,         // 42, 1.5e3
  dot_number,     // .5
  string,         // 'text'
  escape_string,  // E'text'
  signed_number,  // 42 or -42 after an operator, a comma or '(' (`+ -5` and `+ 5` share a key)
};
struct literal_span {
  std::uint32_t begin = 0;  // in the statement's text
  std::uint32_t end = 0;
  literal_kind kind = literal_kind::number;
};

// Where a literal of `kind` starting at `at` ends, scanned as cache_key scans it; 0 when no
// such literal starts there.
[[nodiscard]] std::size_t literal_end(std::string_view sql, std::size_t at, literal_kind kind);

// Blanks literals (strings, dollar-quoted strings, numbers, with their minus sign where it can
// only be unary: after an operator, a comma or '(') to '?', drops comments and folds white
// space; identifiers, keywords, operators and $n parameters stay. EXPLAIN statements keep
// their literals: EXPLAIN (ANALYZE 0) and (ANALYZE 1) differ in what they run. So do statements
// that name set_config: its first literal is the parameter the statement sets.
[[nodiscard]] std::string cache_key(std::string_view sql);
// The same into `out` (replacing what it held): a buffer reused saves an allocation per lookup.
// With `literals`, also where the blanked literals lie (dollar-quoted strings not listed; none
// for EXPLAIN, whose key is its text).
void cache_key(std::string_view sql, std::string& out, std::vector<literal_span>* literals = nullptr);

class classification_cache {
 public:
  classification_cache(std::size_t capacity, volatility_ptr functions);

  [[nodiscard]] classification get(std::string_view sql);
  // The literals of the statement looked up last (see cache_key).
  [[nodiscard]] const std::vector<literal_span>& literals() const { return literals_; }
  // New function volatilities (start-up, reload): everything cached is forgotten.
  void set_functions(volatility_ptr functions);
  [[nodiscard]] const volatility_ptr& functions() const { return functions_; }

  // Changes whenever what the cache answers may change (new function volatilities).
  [[nodiscard]] std::uint64_t generation() const { return generation_; }
  [[nodiscard]] std::uint64_t hits() const { return hits_; }
  [[nodiscard]] std::uint64_t misses() const { return misses_; }
  [[nodiscard]] std::size_t size() const { return index_.size(); }

 private:
  struct entry {
    std::string key;
    classification value;
  };
  std::size_t capacity_;
  volatility_ptr functions_;
  std::list<entry> lru_;
  std::unordered_map<std::string_view, std::list<entry>::iterator> index_;
  std::string key_;  // the key of the statement being looked up, its buffer reused
  std::vector<literal_span> literals_;  // and its literals
  std::uint64_t generation_ = 0;
  std::uint64_t hits_ = 0;
  std::uint64_t misses_ = 0;
};

}  // namespace meridian::routing
