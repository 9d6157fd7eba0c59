#include "routing/classification_cache.hpp"

#include <array>

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
  out.clear();
  out.reserve(sql.size());
  bool pending_space = false;
  std::size_t i = 0;
  const std::size_t n = sql.size();
  auto emit = [&](char c) {
    if (pending_space && !out.empty()) out.push_back(' ');
    pending_space = false;
    out.push_back(c);
  };
  while (i < n) {
    const char c = sql[i];
    if (space(c)) {
      pending_space = true;
      ++i;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
      pending_space = true;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      // Block comments nest in PostgreSQL.
      int depth = 0;
      while (i < n) {
        if (sql[i] == '/' && i + 1 < n && sql[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (sql[i] == '*' && i + 1 < n && sql[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
      pending_space = true;
    } else if (c == '\'') {
      // A string; E'' strings (the prefix was emitted as an identifier char) use backslashes.
      const bool escapes = !out.empty() && (out.back() == 'E' || out.back() == 'e') &&
                           (out.size() == 1 || !ident_char(out[out.size() - 2]));
      if (escapes) out.pop_back();  // E'…' and '…' are the same kind of literal
      ++i;
      while (i < n) {
        if (escapes && sql[i] == '\\' && i + 1 < n) {
          i += 2;
        } else if (sql[i] == '\'') {
          if (i + 1 < n && sql[i + 1] == '\'') {
            i += 2;
          } else {
            ++i;
            break;
          }
        } else {
          ++i;
        }
      }
      emit('?');
    } else if (c == '"') {
      // Quoted identifier: kept as written.
      emit(c);
      ++i;
      while (i < n) {
        out.push_back(sql[i]);
        if (sql[i] == '"') {
          if (i + 1 < n && sql[i + 1] == '"') {
            out.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          break;
        }
        ++i;
      }
    } else if (c == '$' && (out.empty() || !ident_char(out.back()) || pending_space)) {
      // $1 parameters stay; $tag$…$tag$ strings become '?'.
      std::size_t j = i + 1;
      if (j < n && digit(sql[j])) {
        emit('$');
        ++i;
        while (i < n && digit(sql[i])) out.push_back(sql[i++]);
        continue;
      }
      while (j < n && ident_char(sql[j]) && sql[j] != '$') ++j;
      if (j < n && sql[j] == '$') {
        const std::string_view tag = sql.substr(i, j - i + 1);
        const auto close = sql.find(tag, j + 1);
        i = close == std::string_view::npos ? n : close + tag.size();
        emit('?');
      } else {
        emit(c);
        ++i;
      }
    } else if (digit(c) || (c == '.' && i + 1 < n && digit(sql[i + 1]))) {
      if (!out.empty() && !pending_space && ident_char(out.back())) {
        out.push_back(c);  // part of an identifier such as t1
        ++i;
        continue;
      }
      while (i < n && (digit(sql[i]) || sql[i] == '.' || sql[i] == 'e' || sql[i] == 'E' || sql[i] == '_' ||
                       ((sql[i] == '+' || sql[i] == '-') && (sql[i - 1] == 'e' || sql[i - 1] == 'E'))))
        ++i;
      emit('?');
    } else if (ident_char(c)) {
      // A keyword or identifier (digits and $ inside it included): copied as one run.
      emit(c);
      const auto start = ++i;
      while (i < n && ident_char(sql[i])) ++i;
      out.append(sql.data() + start, i - start);
    } else {
      emit(c);
      ++i;
    }
  }
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
