#include "routing/classification_cache.hpp"

#include <array>
#include <cstring>

namespace meridian::routing {

namespace {
// Characters of identifiers and keywords, as a table: the key is built a character at a time.
constexpr auto ident_chars = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c)
    t[static_cast<std::size_t>(c)] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                     c == '_' || c == '$' || c >= 0x80;
  return t;
}();
inline bool ident_char(char c) { return ident_chars[static_cast<unsigned char>(c)]; }
bool digit(char c) { return c >= '0' && c <= '9'; }
bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }

// Where a string literal whose body starts at `i` ends (past its closing quote, or the end):
// '' is a quote inside it, and with `escapes` (E'…') so is \'.
std::size_t string_end(std::string_view s, std::size_t i, bool escapes) {
  const std::size_t n = s.size();
  while (i < n) {
    if (escapes && s[i] == '\\' && i + 1 < n) {
      i += 2;
    } else if (s[i] == '\'') {
      if (i + 1 < n && s[i + 1] == '\'') {
        i += 2;
      } else {
        return i + 1;
      }
    } else {
      ++i;
    }
  }
  return n;
}

bool starts_with_explain(std::string_view key) {
  if (key.size() < 7) return false;
  static constexpr std::string_view word = "explain";
  for (std::size_t i = 0; i < word.size(); ++i) {
    char c = key[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != word[i]) return false;
  }
  return key.size() == 7 || !ident_char(key[7]);
}
}  // namespace

std::string cache_key(std::string_view sql) {
  std::string out;
  cache_key(sql, out);
  return out;
}

void cache_key(std::string_view sql, std::string& out) {
  // The key is never longer than the statement (every character written stands for at least
  // one read), so it is written through a pointer into storage sized once: no capacity check
  // per character.
  const std::size_t n = sql.size();
  out.resize(n);
  char* const begin = out.data();
  char* o = begin;
  const char* const s = sql.data();
  bool pending_space = false;
  std::size_t i = 0;
  auto emit = [&](char c) {
    if (pending_space && o != begin) *o++ = ' ';
    pending_space = false;
    *o++ = c;
  };
  auto copy_run = [&](std::size_t start) {  // sql[start, i) as it is
    if (pending_space && o != begin) *o++ = ' ';
    pending_space = false;
    std::memcpy(o, s + start, i - start);
    o += i - start;
  };
  while (i < n) {
    const char c = s[i];
    if (space(c)) {
      pending_space = true;
      ++i;
    } else if (ident_char(c) && !digit(c) && c != '$') {
      // A keyword or identifier (digits and $ inside it included): copied as one run.
      const auto start = i++;
      while (i < n && ident_char(s[i])) ++i;
      if (i < n && s[i] == '\'' && i - start == 1 && (c == 'E' || c == 'e') &&
          (o == begin || pending_space || !ident_char(o[-1]))) {
        // E'…' is a string with backslash escapes: the same kind of literal as '…'.
        i = string_end(sql, i + 1, true);
        emit('?');
        continue;
      }
      copy_run(start);
    } else if (c == '-' && i + 1 < n && s[i + 1] == '-') {
      while (i < n && s[i] != '\n') ++i;
      pending_space = true;
    } else if (c == '/' && i + 1 < n && s[i + 1] == '*') {
      // Block comments nest in PostgreSQL.
      int depth = 0;
      while (i < n) {
        if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (s[i] == '*' && i + 1 < n && s[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
      pending_space = true;
    } else if (c == '\'') {
      i = string_end(sql, i + 1, false);
      emit('?');
    } else if (c == '"') {
      // Quoted identifier: kept as written.
      emit(c);
      ++i;
      while (i < n) {
        *o++ = s[i];
        if (s[i] == '"') {
          if (i + 1 < n && s[i + 1] == '"') {
            *o++ = '"';
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        ++i;
      }
    } else if (c == '$' && (o == begin || !ident_char(o[-1]) || pending_space)) {
      // $1 parameters stay; $tag$…$tag$ strings become '?'.
      std::size_t j = i + 1;
      if (j < n && digit(s[j])) {
        emit('$');
        ++i;
        while (i < n && digit(s[i])) *o++ = s[i++];
        continue;
      }
      while (j < n && ident_char(s[j]) && s[j] != '$') ++j;
      if (j < n && s[j] == '$') {
        const std::string_view tag = sql.substr(i, j - i + 1);
        const auto close = sql.find(tag, j + 1);
        i = close == std::string_view::npos ? n : close + tag.size();
        emit('?');
      } else {
        emit(c);
        ++i;
      }
    } else if (digit(c) || (c == '.' && i + 1 < n && digit(s[i + 1]))) {
      if (o != begin && !pending_space && ident_char(o[-1])) {
        *o++ = c;  // part of an identifier such as t1
        ++i;
        continue;
      }
      while (i < n && (digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '_' ||
                       ((s[i] == '+' || s[i] == '-') && (s[i - 1] == 'e' || s[i - 1] == 'E'))))
        ++i;
      emit('?');
    } else if (ident_char(c)) {
      // An identifier going on after a $ (a$b): copied as one run.
      const auto start = i++;
      while (i < n && ident_char(s[i])) ++i;
      copy_run(start);
    } else {
      emit(c);
      ++i;
    }
  }
  out.resize(static_cast<std::size_t>(o - begin));
  if (starts_with_explain(out)) out.assign(sql);
}

classification_cache::classification_cache(std::size_t capacity, volatility_ptr functions)
    : capacity_(capacity), functions_(std::move(functions)) {}

classification classification_cache::get(std::string_view sql) {
  cache_key(sql, key_);
  if (auto it = index_.find(std::string_view(key_)); it != index_.end()) {
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->value;
  }
  ++misses_;
  auto value = classify(sql, *functions_);
  if (index_.size() >= capacity_ && !lru_.empty()) {
    index_.erase(lru_.back().key);
    lru_.pop_back();
  }
  lru_.push_front(entry{key_, value});
  index_.emplace(lru_.front().key, lru_.begin());
  return value;
}

void classification_cache::set_functions(volatility_ptr functions) {
  functions_ = std::move(functions);
  ++generation_;
  index_.clear();
  lru_.clear();
}

}  // namespace meridian::routing
