#pragma once
// A contiguous receive buffer: bytes are appended at the end and consumed from the front.
// Consumed space is reclaimed by compaction only when more room is needed, so views into the
// readable region stay valid until the next reserve().
#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

namespace meridian::proxy {

class byte_buffer {
 public:
  explicit byte_buffer(std::size_t initial = 8192) : data_(initial) {}

  [[nodiscard]] std::string_view readable() const { return {data_.data() + begin_, end_ - begin_}; }
  [[nodiscard]] char* write_ptr() { return data_.data() + end_; }
  [[nodiscard]] std::size_t writable() const { return data_.size() - end_; }
  [[nodiscard]] bool empty() const { return begin_ == end_; }
  void commit(std::size_t n) { end_ += n; }
  void consume(std::size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // Makes room so that `total` bytes counted from the first readable byte fit, and at least
  // some space is writable.
  void reserve(std::size_t total) {
    const std::size_t want = std::max(total, (end_ - begin_) + 1);
    if (begin_ > 0 && data_.size() - begin_ < want + min_read_) {
      std::memmove(data_.data(), data_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (data_.size() - begin_ < want) data_.resize(begin_ + want);
    if (writable() == 0) data_.resize(data_.size() + min_read_);
  }
  // Gives back memory after a large message passed through.
  void shrink(std::size_t to) {
    if (data_.size() > to && end_ - begin_ <= to) {
      std::memmove(data_.data(), data_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
      data_.resize(to);
      data_.shrink_to_fit();
    }
  }
  [[nodiscard]] std::size_t capacity() const { return data_.size(); }

 private:
  static constexpr std::size_t min_read_ = 4096;
  std::vector<char> data_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace meridian::proxy
