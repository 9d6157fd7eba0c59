#include "routing/recent_shapes.hpp"

#include <algorithm>
#include <cstring>

namespace meridian::routing {

namespace {
// The first min(8, size) bytes of `text`, in a word (the rest zero).
std::uint64_t first_bytes(std::string_view text) {
  std::uint64_t v = 0;
  if (text.size() >= sizeof v) {
    std::memcpy(&v, text.data(), sizeof v);
  } else {
    std::memcpy(&v, text.data(), text.size());
  }
  return v;
}
}  // namespace

bool recent_shapes::same_shape(const entry& e, std::string_view sql) {
  const std::string_view was = e.sql;
  std::size_t at = 0;       // in `sql`
  std::size_t was_at = 0;   // in `was`
  for (const auto& lit : e.literals) {
    const std::size_t same = lit.begin - was_at;  // text before the literal: must be identical
    if (sql.size() - at < same || std::memcmp(sql.data() + at, was.data() + was_at, same) != 0) return false;
    at += same;
    const std::size_t end = literal_end(sql, at, lit.kind);
    if (end == 0) return false;
    at = end;
    was_at = lit.end;
  }
  const std::size_t rest = was.size() - was_at;
  return sql.size() - at == rest && std::memcmp(sql.data() + at, was.data() + was_at, rest) == 0;
}

bool recent_shapes::matches(std::uint32_t slot, std::uint64_t head, std::string_view sql) const {
  if (slot >= entries_.size()) return false;
  const auto& e = entries_[slot];
  return (head & e.head_mask) == e.head && same_shape(e, sql);
}

const classification* recent_shapes::found(std::uint32_t slot) {
  if (last_ < entries_.size() && last_ != slot) entries_[last_].next = slot;
  last_ = slot;
  auto& e = entries_[slot];
  e.last_used = ++clock_;
  return &e.value;
}

const classification* recent_shapes::find(std::string_view sql, std::uint64_t generation) {
  if (generation != generation_) return nullptr;
  const std::uint64_t head = first_bytes(sql);
  const std::uint32_t predicted = last_ < entries_.size() ? entries_[last_].next : none;
  if (matches(predicted, head, sql)) return found(predicted);
  if (matches(last_, head, sql)) return found(last_);
  for (std::uint32_t i = 0; i < entries_.size(); ++i) {
    if (i == predicted || i == last_ || !matches(i, head, sql)) continue;
    return found(i);
  }
  return nullptr;
}

const classification* recent_shapes::remember(std::string_view sql, const std::vector<literal_span>& literals,
                                              const classification& value, std::uint64_t generation) {
  if (sql.size() > longest) return nullptr;
  if (generation != generation_) {
    entries_.clear();
    last_ = none;
    generation_ = generation;
  }
  entry* slot = nullptr;
  if (entries_.size() < capacity) {
    slot = &entries_.emplace_back();
  } else {
    slot = &entries_.front();
    for (auto& e : entries_)
      if (e.last_used < slot->last_used) slot = &e;
  }
  slot->sql.assign(sql);
  slot->literals.assign(literals.begin(), literals.end());
  slot->value = value;
  const std::size_t fixed = std::min<std::size_t>(literals.empty() ? sql.size() : literals.front().begin, 8);
  slot->head_mask = fixed == 8 ? ~std::uint64_t{0} : (std::uint64_t{1} << (8 * fixed)) - 1;
  slot->head = first_bytes(sql) & slot->head_mask;
  slot->next = none;
  return found(static_cast<std::uint32_t>(slot - entries_.data()));
}

}  // namespace meridian::routing
