#pragma once
// Memory for one pending asynchronous operation at a time, kept in the object that starts it.
//
// Asio allocates every operation (the reactor's op with its handler) and recycles one block per
// thread; with hundreds of clients the waits of different sessions interleave, that one block is
// mostly taken, and each client wait, server read and posted hand-over went to malloc and free.
// An object that keeps at most one such operation pending (a session's wait for its client, a
// server connection's read, a pool's delivery of hand-overs) gives it this block instead: Asio
// takes it through the handler's associated allocator (`with_memory`). A request that does not
// fit, or comes while the block is in use, goes to the heap as before.
//
// Lifetime: Asio moves the handler out of the operation before it frees the operation's memory,
// and destroys that copy after, also when it destroys pending operations at shutdown. A handler
// that holds the owner of the block (a shared_ptr to the session) therefore keeps the block alive
// for as long as Asio uses it.
#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace meridian::proxy {

class handler_memory {
 public:
  handler_memory() = default;
  handler_memory(const handler_memory&) = delete;
  handler_memory& operator=(const handler_memory&) = delete;

  void* allocate(std::size_t size) {
    if (!in_use_ && size <= sizeof(storage_)) {
      in_use_ = true;
      return storage_;
    }
    return ::operator new(size);
  }
  void deallocate(void* p) noexcept {
    if (p == static_cast<void*>(storage_)) {
      in_use_ = false;
    } else {
      ::operator delete(p);
    }
  }
  [[nodiscard]] bool in_use() const { return in_use_; }

 private:
  // The largest operation kept here, a socket read with its handler and executor, takes 168
  // bytes with Boost 1.74 and GCC 12 (tests/proxy/handler_memory_test.cpp checks that it fits).
  alignas(std::max_align_t) unsigned char storage_[192];
  bool in_use_ = false;
};

template <class T>
class handler_allocator {
 public:
  using value_type = T;
  explicit handler_allocator(handler_memory& m) noexcept : memory_(&m) {}
  template <class U>
  handler_allocator(const handler_allocator<U>& other) noexcept : memory_(other.memory_) {}  // NOLINT: rebinding

  T* allocate(std::size_t n) { return static_cast<T*>(memory_->allocate(sizeof(T) * n)); }
  void deallocate(T* p, std::size_t) noexcept { memory_->deallocate(p); }

  template <class U>
  bool operator==(const handler_allocator<U>& other) const noexcept {
    return memory_ == other.memory_;
  }

 private:
  template <class>
  friend class handler_allocator;
  handler_memory* memory_;
};

// A completion handler whose operation is allocated from `memory`.
template <class Handler>
class with_memory_t {
 public:
  using allocator_type = handler_allocator<Handler>;
  with_memory_t(handler_memory& memory, Handler handler) : memory_(&memory), handler_(std::move(handler)) {}
  allocator_type get_allocator() const noexcept { return allocator_type(*memory_); }
  template <class... Args>
  void operator()(Args&&... args) {
    handler_(std::forward<Args>(args)...);
  }

 private:
  handler_memory* memory_;
  Handler handler_;
};

template <class Handler>
with_memory_t<std::decay_t<Handler>> with_memory(handler_memory& memory, Handler&& handler) {
  return with_memory_t<std::decay_t<Handler>>(memory, std::forward<Handler>(handler));
}

}  // namespace meridian::proxy
