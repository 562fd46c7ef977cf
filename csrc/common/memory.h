// Sizes of the core's buffers, checked before anything is allocated.
//
// A network's buffers are sized from numbers a caller chose (layer sizes, a
// batch's rows) or a file declared, so their products can overflow 64 bits
// or ask for more memory than the machine has. Every allocation path
// computes its size with count_mul / count_add (std::overflow_error, which
// Python sees as OverflowError, naming what was being sized) and asks
// require_memory before it allocates (OutOfMemory, a std::bad_alloc that
// Python sees as MemoryError, naming the buffer and the bytes it needed).
#pragma once

#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>

#include "common/types.h"

namespace fastmlp {

// std::bad_alloc with a message (pybind11 turns bad_alloc's what() into the
// MemoryError's message).
class OutOfMemory : public std::bad_alloc {
 public:
  explicit OutOfMemory(std::string msg) : msg_(std::move(msg)) {}
  const char* what() const noexcept override { return msg_.c_str(); }

 private:
  std::string msg_;
};

// a * b and a + b for non-negative counts into out; false (out untouched)
// when the result does not fit an index_t.
bool mul_fits(index_t a, index_t b, index_t& out);
bool add_fits(index_t a, index_t b, index_t& out);
// The same, throwing std::overflow_error ("<what>: the size does not fit a
// 64-bit count") instead of returning false.
index_t count_mul(index_t a, index_t b, const char* what);
index_t count_add(index_t a, index_t b, const char* what);
// n elements of `elem` bytes each, rounded up to whole 64-byte lines.
std::uint64_t count_bytes(index_t n, std::size_t elem, const char* what);

// "1.5 GiB (1610612736 bytes)".
std::string format_bytes(std::uint64_t bytes);

// The most memory one buffer request may take: the machine's physical
// memory, or the address-space / data-segment rlimit when lower. 0: unknown
// (no check). FASTMLP_MEMORY_LIMIT (bytes) lowers it, for tests.
std::uint64_t memory_limit();

// Throws OutOfMemory ("<what>: needs <bytes>, more than <limit>") when
// `bytes` exceeds memory_limit(). A request below the limit may still fail
// in the allocator, which then throws OutOfMemory too (AlignedBuffer).
void require_memory(std::uint64_t bytes, const std::string& what);

}  // namespace fastmlp
