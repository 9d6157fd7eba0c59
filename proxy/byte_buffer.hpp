#pragma once
// A contiguous receive buffer: bytes are appended at the end and consumed from the front.
// Consumed space is reclaimed by compaction only when more room is needed, so views into the
// readable region stay valid until the next reserve(). While empty it can give its storage back
// to a buffer_stock, so that an idle connection holds no receive memory.
#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>
#include <vector>

namespace meridian::proxy {

// Receive buffers live in pages of their own (mmap), not in the malloc heap: thousands of
// clients logging in at once each hold one briefly, and from the heap those would leave holes
// between the sessions' long-lived objects, free but resident. Pages given back go back to
// the kernel at once.
template <class T>
struct page_allocator {
  using value_type = T;
  page_allocator() = default;
  template <class U>
  page_allocator(const page_allocator<U>&) {}  // NOLINT(google-explicit-constructor): rebinding
  T* allocate(std::size_t n) {
    void* p = ::mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) { ::munmap(p, n * sizeof(T)); }
  template <class U>
  bool operator==(const page_allocator<U>&) const {
    return true;
  }
};
using buffer_storage = std::vector<char, page_allocator<char>>;

// Receive buffers of one size not in use, for the next connection that reads (one per worker
// thread: no lock). At most `max_kept` are kept; the rest are freed.
class buffer_stock {
 public:
  buffer_stock(std::size_t buffer_size, std::size_t max_kept) : size_(buffer_size), max_kept_(max_kept) {}
  [[nodiscard]] buffer_storage take() {
    if (kept_.empty()) return buffer_storage(size_);
    auto b = std::move(kept_.back());
    kept_.pop_back();
    return b;
  }
  // Buffers that grew past the standard size (a large message went through) are freed.
  void give(buffer_storage&& b) {
    if (b.size() == size_ && kept_.size() < max_kept_) kept_.push_back(std::move(b));
    b = buffer_storage();
  }
  [[nodiscard]] std::size_t kept() const { return kept_.size(); }

 private:
  std::size_t size_;
  std::size_t max_kept_;
  std::vector<buffer_storage> kept_;
};

class byte_buffer {
 public:
  explicit byte_buffer(std::size_t initial = 8192) : data_(initial) {}
  // Gives the storage back while nothing is buffered; true when it did.
  bool lend(buffer_stock& stock) {
    if (!empty() || data_.empty()) return false;
    stock.give(std::move(data_));
    data_ = buffer_storage();
    begin_ = end_ = 0;
    return true;
  }
  // Storage again after lend() (a no-op while it has some).
  void borrow(buffer_stock& stock) {
    if (data_.empty()) data_ = stock.take();
  }

  [[nodiscard]] std::string_view readable() const { return {data_.data() + begin_, end_ - begin_}; }
  [[nodiscard]] char* write_ptr() { return data_.data() + end_; }
  [[nodiscard]] std::size_t writable() const { return data_.size() - end_; }
  [[nodiscard]] bool empty() const { return begin_ == end_; }
  void commit(std::size_t n) { end_ += n; }
  // Bytes consumed since the buffer was made: where the first readable byte lies in the stream.
  [[nodiscard]] std::uint64_t position() const { return consumed_; }
  void consume(std::size_t n) {
    consumed_ += n;
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  // Makes room so that `total` bytes counted from the first readable byte fit, and at least
  // some space is writable.
  void reserve(std::size_t total) {
    // Nearly always (an empty buffer after a relayed answer): nothing to move, room to read.
    if (begin_ == 0 && total <= data_.size() && end_ < data_.size()) return;
    make_room(total);
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
  // Puts `bytes` back in front of what is readable, as if they had not been consumed (a unit
  // sent again). Rare: it copies what is readable.
  void unread(std::string_view bytes) {
    const std::string rest(readable());
    if (data_.size() < bytes.size() + rest.size() + min_read_) data_.resize(bytes.size() + rest.size() + min_read_);
    std::memcpy(data_.data(), bytes.data(), bytes.size());
    if (!rest.empty()) std::memcpy(data_.data() + bytes.size(), rest.data(), rest.size());
    begin_ = 0;
    end_ = bytes.size() + rest.size();
    consumed_ -= std::min<std::uint64_t>(consumed_, bytes.size());
  }

 private:
  void make_room(std::size_t total) {
    // Lent (or never given) storage: borrow() brings a standard buffer before the next read,
    // which holds what an empty buffer can need (a message header).
    if (data_.empty() && total <= min_read_) return;
    const std::size_t want = std::max(total, (end_ - begin_) + 1);
    if (begin_ > 0 && data_.size() - begin_ < want + min_read_) {
      std::memmove(data_.data(), data_.data() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (data_.size() - begin_ < want) data_.resize(begin_ + want);
    if (writable() == 0) data_.resize(data_.size() + min_read_);
  }

  static constexpr std::size_t min_read_ = 4096;
  buffer_storage data_;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
  std::uint64_t consumed_ = 0;
};

}  // namespace meridian::proxy
