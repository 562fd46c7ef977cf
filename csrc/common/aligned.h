// 64-byte aligned, non-initialising buffers: one cache line, one AVX-512
// vector. Parameters, gradients, workspaces and pack buffers all use them.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#include "common/memory.h"
#include "common/types.h"

namespace fastmlp {

constexpr std::size_t kAlign = 64;

template <class T>
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(index_t n) { resize(n); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  AlignedBuffer(AlignedBuffer&& o) noexcept { swap(o); }
  AlignedBuffer& operator=(AlignedBuffer&& o) noexcept {
    swap(o);
    return *this;
  }
  ~AlignedBuffer() { std::free(p_); }

  // Discards the contents. Throws OutOfMemory (MemoryError in Python) when
  // the allocation fails and std::overflow_error when n elements do not fit
  // a byte count; either way the buffer is left empty, never half-sized.
  void resize(index_t n) {
    if (n == n_) return;
    std::free(p_);
    p_ = nullptr;
    n_ = 0;
    if (n <= 0) return;
    const std::uint64_t bytes = count_bytes(n, sizeof(T), "buffer");
    void* q = std::aligned_alloc(kAlign, std::size_t(bytes));
    if (!q) throw OutOfMemory("could not allocate " + format_bytes(bytes));
    p_ = static_cast<T*>(q);
    n_ = n;
  }
  // Grows (never shrinks) to at least n elements; contents are not kept.
  void reserve(index_t n) {
    if (n > n_) resize(n);
  }
  void zero() {
    if (n_) std::memset(static_cast<void*>(p_), 0, static_cast<std::size_t>(n_) * sizeof(T));
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  index_t size() const { return n_; }
  T& operator[](index_t i) { return p_[i]; }
  const T& operator[](index_t i) const { return p_[i]; }

 private:
  void swap(AlignedBuffer& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(n_, o.n_);
  }
  T* p_ = nullptr;
  index_t n_ = 0;
};

}  // namespace fastmlp
