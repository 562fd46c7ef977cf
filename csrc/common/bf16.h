// bfloat16 rounding: float32 -> bf16 bits (the upper half of a float32) by
// round-to-nearest-even, the rounding of torch's .to(torch.bfloat16) and of
// the AVX512-BF16 conversions (without their denormal flushing). Python twin:
// fastmlp.reference.round_bf16.
//
// NaN stays NaN (quieted, sign and top payload bits kept: truncation alone
// could turn a NaN whose payload lies in the low half into infinity). Values
// past the largest bf16 by at least half a unit in the last place round to
// +-inf, FLT_MAX included (bf16's largest finite value is 0x7F7F =
// 3.3895e38). Denormals round like any other value, -0 stays -0.
#pragma once

#include <cstdint>
#include <cstring>

namespace fastmlp {

inline std::uint16_t bf16_bits(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return std::uint16_t((u >> 16) | 0x0040u);
  // Adding 0x7FFF plus the lowest kept bit carries into the kept half exactly
  // when the dropped half is above one half, or equal to it with an odd kept
  // half: round half to even. A carry out of the mantissa bumps the exponent
  // (and the largest finite values become infinity), as rounding should.
  u += 0x7FFFu + ((u >> 16) & 1u);
  return std::uint16_t(u >> 16);
}

inline float bf16_to_float(std::uint16_t h) {
  const std::uint32_t u = std::uint32_t(h) << 16;
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// The float32 that holds bf16(x) exactly.
inline float round_bf16(float x) { return bf16_to_float(bf16_bits(x)); }

}  // namespace fastmlp
