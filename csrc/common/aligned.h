// 64-byte aligned, non-initialising buffers: one cache line, one AVX-512
// vector. Parameters, gradients, workspaces and pack buffers all use them.
#pragma once

#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

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

  // Discards the contents. Throws std::bad_alloc (MemoryError in Python).
  void resize(index_t n) {
    if (n == n_) return;
    std::free(p_);
    p_ = nullptr;
    n_ = 0;
    if (n <= 0) return;
    std::size_t bytes = static_cast<std::size_t>(n) * sizeof(T);
    bytes = (bytes + kAlign - 1) / kAlign * kAlign;
    void* q = std::aligned_alloc(kAlign, bytes);
    if (!q) throw std::bad_alloc();
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
