// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
//
// A draw is a pure function of (key, counter): the seed is the key and the
// counter names what the number is for (stream, layer, element, ...). No
// generator state is carried from one draw to the next, so any thread can
// compute any draw and results never depend on the thread count or on the
// order in which elements are visited.
#pragma once

#include <cmath>
#include <cstdint>

namespace fastmlp {

struct Philox4x32 {
  using Block = struct { uint32_t v[4]; };

  static inline Block generate(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                               uint64_t seed) {
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (int r = 0; r < 10; ++r) {
      const uint64_t p0 = uint64_t(0xD2511F53u) * c0;
      const uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
      const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
      const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
      c0 = hi1 ^ c1 ^ k0;
      c1 = lo1;
      c2 = hi0 ^ c3 ^ k1;
      c3 = lo0;
      k0 += 0x9E3779B9u;
      k1 += 0xBB67AE85u;
    }
    return Block{{c0, c1, c2, c3}};
  }
};

// Streams: the third counter word, so draws for different purposes never collide.
enum class RngStream : uint32_t { init = 1, shuffle = 2, dropout = 3 };

// Uniform in [0, 1) with 53 random bits, from two 32-bit words.
inline double u01_from(uint32_t hi, uint32_t lo) {
  const uint64_t bits = (uint64_t(hi) << 21) ^ (uint64_t(lo) >> 11);  // 53 bits
  return double(bits & ((uint64_t(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// Two uniforms for draw `index` of (stream, tag) under `seed`.
inline void uniform_pair(uint64_t seed, RngStream stream, uint32_t tag, uint64_t index, double* u1,
                         double* u2) {
  auto b = Philox4x32::generate(uint32_t(index), uint32_t(index >> 32), uint32_t(stream), tag, seed);
  *u1 = u01_from(b.v[0], b.v[1]);
  *u2 = u01_from(b.v[2], b.v[3]);
}

inline double uniform01(uint64_t seed, RngStream stream, uint32_t tag, uint64_t index) {
  double u1, u2;
  uniform_pair(seed, stream, tag, index, &u1, &u2);
  return u1;
}

// Standard normal by Box-Muller; 1 - u1 lies in (0, 1], so the log is finite.
inline double normal01(uint64_t seed, RngStream stream, uint32_t tag, uint64_t index) {
  double u1, u2;
  uniform_pair(seed, stream, tag, index, &u1, &u2);
  return std::sqrt(-2.0 * std::log(1.0 - u1)) * std::cos(6.283185307179586476925 * u2);
}

}  // namespace fastmlp
