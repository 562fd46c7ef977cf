// Basic types shared by every part of the core: index type, transpose flags,
// activation and loss identifiers. The numeric values of Act and Loss are part
// of the binding contract (python/fastmlp/_enums.py mirrors them).
#pragma once

#include <cstddef>
#include <cstdint>

namespace fastmlp {

using index_t = std::ptrdiff_t;

enum class Trans : int { N = 0, T = 1 };

enum class Act : int {
  identity = 0,
  sigmoid = 1,
  tanh = 2,
  relu = 3,
  leaky_relu = 4,
  elu = 5,
  gelu = 6,
  softplus = 7,
};
constexpr int kNumActs = 8;

enum class Loss : int { mse = 0, cross_entropy = 1, binary_cross_entropy = 2, poisson = 3 };
constexpr int kNumLosses = 4;

// The operands of a network's GEMMs: the storage type T itself (native), or
// float32 rounded to bfloat16 while packed, products summed in float32
// (bf16: the mixed_bfloat16 policy; float networks only).
enum class GemmPrecision : int { native = 0, bf16 = 1 };

enum class Init : int {
  he_uniform = 0,
  he_normal = 1,
  glorot_uniform = 2,
  glorot_normal = 3,
  lecun_normal = 4,
  zeros = 5,
};

}  // namespace fastmlp
