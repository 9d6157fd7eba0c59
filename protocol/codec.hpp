#pragma once
// Big-endian readers and writers over message bodies. Every read is bounds-checked; a reader
// that runs past the end becomes "failed" and stays so, which lets parsers check once at the end.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "protocol/byte_order.hpp"
#include "protocol/result.hpp"

namespace meridian::protocol {

class body_reader {
 public:
  explicit body_reader(std::string_view body) : data_(body) {}

  [[nodiscard]] std::uint8_t u8();
  [[nodiscard]] std::int16_t i16();
  [[nodiscard]] std::int32_t i32();
  // A NUL-terminated string; the view excludes the terminator.
  [[nodiscard]] std::string_view cstring();
  [[nodiscard]] std::string_view bytes(std::size_t n);
  [[nodiscard]] std::string_view rest();

  [[nodiscard]] std::size_t remaining() const { return data_.size() - pos_; }
  [[nodiscard]] bool failed() const { return failed_; }
  // True when everything was consumed and no read failed.
  [[nodiscard]] bool complete() const { return !failed_ && pos_ == data_.size(); }

 private:
  bool take(std::size_t n);
  std::string_view data_;
  std::size_t pos_ = 0;
  bool failed_ = false;
};

// Appends one message to an output string: header placeholder first, length filled in by finish().
class message_writer {
 public:
  // type == 0 writes an untyped message (startup packets).
  message_writer(std::string& out, char type);
  message_writer(const message_writer&) = delete;
  message_writer& operator=(const message_writer&) = delete;
  ~message_writer() { finish(); }

  message_writer& u8(std::uint8_t v);
  message_writer& i16(std::int16_t v);
  message_writer& i32(std::int32_t v);
  message_writer& cstring(std::string_view s);
  message_writer& bytes(std::string_view s);
  void finish();

 private:
  std::string& out_;
  std::size_t length_pos_;
  bool finished_ = false;
};

// A parsed message is valid only if the reader consumed its whole body without running short.
template <class T>
[[nodiscard]] result<T> complete_or_violation(const body_reader& in, T value, const char* what) {
  if (!in.complete()) return violation(std::string("invalid ") + what + " message format");
  return value;
}

}  // namespace meridian::protocol
