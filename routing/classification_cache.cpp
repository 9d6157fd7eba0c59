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
constexpr bool digit(char c) { return c >= '0' && c <= '9'; }
constexpr bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'; }
// After these (as the last character written to the key), a '-' before a number is a sign, not
// a binary minus: the number and its sign are one literal. (After an identifier, a literal or
// ')' it may be either, and stays an operator.)
constexpr bool sign_may_follow(char c) {
  switch (c) {
    case '(': case ',': case '=': case '<': case '>': case '+': case '-': case '*': case '/': case '%': case '^':
      return true;
    default:
      return false;
  }
}

// What a character can start in the key's scan.
enum class start : unsigned char { other, space, word, digit, dot, quote, double_quote, dollar, dash, slash };
constexpr auto starts = [] {
  std::array<start, 256> t{};
  for (int i = 0; i < 256; ++i) {
    const char c = static_cast<char>(i);
    auto& k = t[static_cast<std::size_t>(i)];
    if (space(c)) k = start::space;
    else if (digit(c)) k = start::digit;
    else if (c == '$') k = start::dollar;
    else if ((i >= 'a' && i <= 'z') || (i >= 'A' && i <= 'Z') || c == '_' || i >= 0x80) k = start::word;
    else if (c == '.') k = start::dot;
    else if (c == '\'') k = start::quote;
    else if (c == '"') k = start::double_quote;
    else if (c == '-') k = start::dash;
    else if (c == '/') k = start::slash;
    else k = start::other;
  }
  return t;
}();

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

// Where a number starting at `i` (a digit, or a dot before one) ends.
std::size_t number_end(std::string_view s, std::size_t i) {
  const std::size_t n = s.size();
  while (i < n && (digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '_' ||
                   ((s[i] == '+' || s[i] == '-') && (s[i - 1] == 'e' || s[i - 1] == 'E'))))
    ++i;
  return i;
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

// Whether the text names set_config, whose first argument, a literal, is the parameter it sets.
bool names_set_config(std::string_view key) {
  static constexpr std::string_view word = "set_config";
  // The '_' is the word's fourth character.
  for (auto at = key.find('_'); at != std::string_view::npos && at + 7 <= key.size(); at = key.find('_', at + 1)) {
    if (at < 3) continue;
    bool same = true;
    for (std::size_t i = 0; i < word.size() && same; ++i) {
      char c = key[at - 3 + i];
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      same = c == word[i];
    }
    if (same) return true;
  }
  return false;
}
}  // namespace

std::size_t literal_end(std::string_view sql, std::size_t at, literal_kind kind) {
  const std::size_t n = sql.size();
  if (at >= n) return 0;
  switch (kind) {
    case literal_kind::number:
      return digit(sql[at]) ? number_end(sql, at) : 0;
    case literal_kind::signed_number:
      if (sql[at] == '-' && at + 1 < n && digit(sql[at + 1])) return number_end(sql, at + 1);
      return digit(sql[at]) ? number_end(sql, at) : 0;
    case literal_kind::dot_number:
      return sql[at] == '.' && at + 1 < n && digit(sql[at + 1]) ? number_end(sql, at) : 0;
    case literal_kind::string:
      return sql[at] == '\'' ? string_end(sql, at + 1, false) : 0;
    case literal_kind::escape_string:
      return (sql[at] == 'E' || sql[at] == 'e') && at + 1 < n && sql[at + 1] == '\'' ? string_end(sql, at + 2, true)
                                                                                      : 0;
  }
  return 0;
}

std::string cache_key(std::string_view sql) {
  std::string out;
  cache_key(sql, out);
  return out;
}

void cache_key(std::string_view sql, std::string& out, std::vector<literal_span>* literals) {
  // The key is never longer than the statement (every character written stands for at least
  // one read), so it is written through a pointer into storage sized once: no capacity check
  // per character. One table lookup says what a character can start; identifiers and numbers
  // are copied or skipped in tight loops of their own.
  const std::size_t n = sql.size();
  out.resize(n);
  char* const begin = out.data();
  char* o = begin;
  const char* const s = sql.data();
  bool pending_space = false;
  std::size_t i = 0;
  if (literals) literals->clear();
  auto literal = [&](std::size_t from, literal_kind kind) {
    if (literals)
      literals->push_back(literal_span{static_cast<std::uint32_t>(from), static_cast<std::uint32_t>(i), kind});
  };
  auto space_before = [&] {  // the folded white space before a token, unless at the start
    if (pending_space && o != begin) *o++ = ' ';
    pending_space = false;
  };
  auto emit = [&](char c) {
    space_before();
    *o++ = c;
  };
  while (i < n) {
    const char c = s[i];
    switch (starts[static_cast<unsigned char>(c)]) {
      case start::space:
        pending_space = true;
        ++i;
        break;
      case start::word: {
        // A keyword or identifier (digits and $ inside it included): copied as one run.
        const bool escape_string_possible = o == begin || pending_space || !ident_char(o[-1]);
        const std::size_t i_begin = i;
        space_before();
        char* const run = o;
        do {
          *o++ = s[i++];
        } while (i < n && ident_char(s[i]));
        if (o - run == 1 && (c == 'E' || c == 'e') && i < n && s[i] == '\'' && escape_string_possible) {
          // E'…' is a string with backslash escapes: the same kind of literal as '…'.
          i = string_end(sql, i + 1, true);
          literal(i_begin, literal_kind::escape_string);
          o = run;
          *o++ = '?';
        }
        break;
      }
      case start::dash:
        if (i + 1 < n && s[i + 1] == '-') {
          while (i < n && s[i] != '\n') ++i;
          pending_space = true;
        } else if (i + 1 < n && digit(s[i + 1]) && o != begin && sign_may_follow(o[-1])) {
          const std::size_t from = i;  // a negative number
          i = number_end(sql, i + 1);
          literal(from, literal_kind::signed_number);
          emit('?');
        } else {
          emit(c);
          ++i;
        }
        break;
      case start::slash:
        if (i + 1 < n && s[i + 1] == '*') {
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
        } else {
          emit(c);
          ++i;
        }
        break;
      case start::quote: {
        const std::size_t from = i;
        i = string_end(sql, i + 1, false);
        literal(from, literal_kind::string);
        emit('?');
        break;
      }
      case start::double_quote:
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
        break;
      case start::dollar:
        if (o == begin || !ident_char(o[-1]) || pending_space) {
          // $1 parameters stay; $tag$…$tag$ strings become '?'.
          std::size_t j = i + 1;
          if (j < n && digit(s[j])) {
            emit('$');
            ++i;
            while (i < n && digit(s[i])) *o++ = s[i++];
            break;
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
        } else {
          // An identifier going on after a $ (a$b): copied as one run.
          space_before();
          do {
            *o++ = s[i++];
          } while (i < n && ident_char(s[i]));
        }
        break;
      case start::dot:
        if (!(i + 1 < n && digit(s[i + 1]))) {
          emit(c);
          ++i;
          break;
        }
        [[fallthrough]];
      case start::digit:
        if (o != begin && !pending_space && ident_char(o[-1])) {
          *o++ = c;  // part of an identifier such as t1
          ++i;
          break;
        }
      {
        const std::size_t from = i;
        // Where a sign would have been part of it, the number is a signed_number: with or
        // without one, it makes the same key there.
        const auto kind = c == '.' ? literal_kind::dot_number
                          : o != begin && sign_may_follow(o[-1]) ? literal_kind::signed_number
                                                                 : literal_kind::number;
        i = number_end(sql, i);
        literal(from, kind);
        emit('?');
        break;
      }
      case start::other:
        emit(c);
        ++i;
        break;
    }
  }
  out.resize(static_cast<std::size_t>(o - begin));
  if (starts_with_explain(out) || names_set_config(out)) {
    out.assign(sql);
    if (literals) literals->clear();
  }
}

classification_cache::classification_cache(std::size_t capacity, volatility_ptr functions)
    : capacity_(capacity), functions_(std::move(functions)) {}

classification classification_cache::get(std::string_view sql) {
  cache_key(sql, key_, &literals_);
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
