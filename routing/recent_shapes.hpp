#pragma once
// The statements a session classified lately, recognised again by their shape: the same text
// but for the literals. Applications repeat a handful of statements with new values
// (`... WHERE id = 42`, then `= 43`); such a statement is matched against the remembered text
// with a few memcmp calls and its literals scanned in place, instead of building its cache key
// (a pass over every character), hashing it and looking it up.
//
// Sound by construction: cache_key scans left to right, and what it writes at a position
// depends only on the text before it and the characters it looks at there. Two statements
// whose text is identical outside their literals, with literals of the same kind in the same
// places, reach every literal in the same state, blank both to '?', and go on alike: their keys
// are equal, so the cache would give both the same classification. Dollar-quoted strings are
// not matched as literals: a statement holding one matches only a same text there.
//
// Up to `capacity` entries per session, allocated as statements are remembered (a client that
// ran nothing holds an empty vector); statements longer than `longest` are not remembered.
// Sixteen hold a TPC-B-like transaction's statements twice over (a sign outside a literal makes
// another shape: `+ 5` and `+ -5`).
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "routing/classification_cache.hpp"
#include "routing/classifier.hpp"

namespace meridian::routing {

class recent_shapes {
 public:
  static constexpr std::size_t capacity = 16;
  static constexpr std::size_t longest = 2048;

  // The classification of a remembered statement of the same shape as `sql` (nullptr when
  // none). `generation`: the classification cache's (see classification_cache::generation);
  // what was remembered under another is forgotten.
  // Sessions repeat their statements in the same order: the entry that followed the last one
  // found last time, then that one itself, are tried before the rest.
  [[nodiscard]] const classification* find(std::string_view sql, std::uint64_t generation);
  // Remembers `sql`, whose literals are `literals` (cache_key's), as classified `value`.
  // Replaces the entry used least recently once all are taken. The remembered classification
  // (valid until the next call), or nullptr for a statement longer than `longest`.
  const classification* remember(std::string_view sql, const std::vector<literal_span>& literals,
                                 const classification& value, std::uint64_t generation);

  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  // The classification cache's generation the remembered statements belong to.
  [[nodiscard]] std::uint64_t generation() const { return generation_; }

 private:
  struct entry {
    std::string sql;
    std::vector<literal_span> literals;
    classification value;
    // The first bytes of the text before the first literal (up to 8), masked: most misses
    // are told apart by one comparison.
    std::uint64_t head = 0;
    std::uint64_t head_mask = 0;
    std::uint64_t last_used = 0;
    std::uint32_t next = none;  // the entry found after this one, last time
  };
  static constexpr std::uint32_t none = ~std::uint32_t{0};
  [[nodiscard]] static bool same_shape(const entry& e, std::string_view sql);
  [[nodiscard]] bool matches(std::uint32_t slot, std::uint64_t head, std::string_view sql) const;
  const classification* found(std::uint32_t slot);
  std::vector<entry> entries_;
  std::uint32_t last_ = none;  // the entry found or remembered last
  std::uint64_t generation_ = 0;
  std::uint64_t clock_ = 0;
};

}  // namespace meridian::routing
