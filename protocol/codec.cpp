#include "protocol/codec.hpp"

#include <cstring>

namespace meridian::protocol {

bool body_reader::take(std::size_t n) {
  if (failed_ || remaining() < n) {
    failed_ = true;
    return false;
  }
  return true;
}

std::uint8_t body_reader::u8() {
  if (!take(1)) return 0;
  return static_cast<std::uint8_t>(data_[pos_++]);
}

std::int16_t body_reader::i16() {
  if (!take(2)) return 0;
  auto v = get_i16(data_.data() + pos_);
  pos_ += 2;
  return v;
}

std::int32_t body_reader::i32() {
  if (!take(4)) return 0;
  auto v = get_i32(data_.data() + pos_);
  pos_ += 4;
  return v;
}

std::string_view body_reader::cstring() {
  if (failed_) return {};
  auto end = data_.find('\0', pos_);
  if (end == std::string_view::npos) {
    failed_ = true;
    return {};
  }
  auto s = data_.substr(pos_, end - pos_);
  pos_ = end + 1;
  return s;
}

std::string_view body_reader::bytes(std::size_t n) {
  if (!take(n)) return {};
  auto s = data_.substr(pos_, n);
  pos_ += n;
  return s;
}

std::string_view body_reader::rest() {
  if (failed_) return {};
  auto s = data_.substr(pos_);
  pos_ = data_.size();
  return s;
}

message_writer::message_writer(std::string& out, char type) : out_(out) {
  if (type != 0) out_.push_back(type);
  length_pos_ = out_.size();
  out_.append(4, '\0');
}

message_writer& message_writer::u8(std::uint8_t v) {
  out_.push_back(static_cast<char>(v));
  return *this;
}

message_writer& message_writer::i16(std::int16_t v) {
  auto u = static_cast<std::uint16_t>(v);
  out_.push_back(static_cast<char>(u >> 8));
  out_.push_back(static_cast<char>(u & 0xff));
  return *this;
}

message_writer& message_writer::i32(std::int32_t v) {
  char b[4];
  put_i32(b, v);
  out_.append(b, 4);
  return *this;
}

message_writer& message_writer::cstring(std::string_view s) {
  out_.append(s);
  out_.push_back('\0');
  return *this;
}

message_writer& message_writer::bytes(std::string_view s) {
  out_.append(s);
  return *this;
}

void message_writer::finish() {
  if (finished_) return;
  finished_ = true;
  put_i32(out_.data() + length_pos_, static_cast<std::int32_t>(out_.size() - length_pos_));
}

}  // namespace meridian::protocol
