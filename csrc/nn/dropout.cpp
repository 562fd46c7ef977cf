// Inverted dropout: the keyed Philox mask (stream documented in dropout.h)
// and its application. Python twin: fastmlp.reference.dropout_mask.
//
// Cost: one Philox4x32-10 block (ten rounds of two 32x32->64 multiplies and
// four xors) gives the draws of four consecutive elements. Blocks are made
// kLanes at a time, lane j holding block b + j, in a loop with no branches
// that the compiler vectorizes across lanes; the key schedule is the same for
// every block and is computed once. Measured on Zen 4, float32, 2^20
// elements, one thread: scalar Philox 1.84 ns per element, the generic
// (SSE2) lanes 1.56 ns, the AVX-512 lanes 0.48 ns. SSE2 gains little: it
// has no 32x32->64 multiply on four lanes, so each product costs two
// pmuludq and the shuffles that pair them up.
//
// The AVX-512 copy is the same source compiled with a target attribute
// (GCC/Clang on x86-64) and used when the GEMM path in use is avx512
// (FASTMLP_ISA / fm.ops.set_isa choose it), so tests can run both copies.
// Both compute only integer operations and one select, so they give the
// same bits; the choice changes the speed alone.
#include "nn/dropout.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/parallel.h"
#include "common/restrict.h"
#include "gemm/gemm.h"
#include "nn/rng.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(_MSC_VER)
#define FM_DROPOUT_AVX512 1
#endif

namespace fastmlp {

namespace {

constexpr uint32_t kMulA = 0xD2511F53u, kMulB = 0xCD9E8D57u;  // Philox4x32 multipliers
constexpr uint32_t kWeylA = 0x9E3779B9u, kWeylB = 0xBB67AE85u;  // key increments
constexpr int kRounds = 10;
constexpr int kLanes = 16;  // blocks per batch: 64 elements, one AVX-512 register of words

// The per-round keys, shared by every block of one (seed).
struct KeySchedule {
  uint32_t k0[kRounds], k1[kRounds];
  explicit KeySchedule(uint64_t seed) {
    uint32_t a = uint32_t(seed), b = uint32_t(seed >> 32);
    for (int r = 0; r < kRounds; ++r) {
      k0[r] = a;
      k1[r] = b;
      a += kWeylA;
      b += kWeylB;
    }
  }
};

// Keep element e iff its word w satisfies w * 2^-32 >= p. Scaling by 2^32 is
// exact in double, and w is an integer, so that is w >= ceil(p * 2^32): an
// integer compare, with no conversion of w, that decides exactly as the
// floating-point rule of dropout.h (and of the reference) does.
struct Threshold {
  uint64_t t;  // in [0, 2^32]; 2^32 keeps nothing
  explicit Threshold(double p) : t(uint64_t(std::ceil(p * 4294967296.0))) {}
};

// Masks of blocks [b, b + kLanes): elements 4b .. 4(b + kLanes) - 1.
// t32 < 2^32 (the caller handles t == 2^32). The lane loop is the SIMD
// loop; the ten rounds inside it are unrolled so that the four counter words
// of every lane stay in registers throughout. W is the lane type that holds
// a 32-bit word: uint32_t suits SSE2/NEON (four words per vector, the high
// half of a product by the widening-multiply idiom); uint64_t suits AVX-512,
// where the product is one 64-bit lane multiply and its halves a shift and a
// mask, with no shuffling of even and odd words (about 2x faster there, and
// slower than uint32_t on SSE2, hence the choice per copy).
template <class T, class W>
FM_ALWAYS_INLINE void mask_batch(T* FM_RESTRICT out, uint64_t b, uint32_t c1, uint32_t c2,
                                 uint32_t c3, const KeySchedule& ks, uint32_t t32, T scale) {
#pragma omp simd
  for (int j = 0; j < kLanes; ++j) {
    W x0 = uint32_t(b + uint64_t(j)), x1 = c1, x2 = c2, x3 = c3;  // x0 = uint32(e / 4)
#pragma GCC unroll 10
    for (int r = 0; r < kRounds; ++r) {
      const uint64_t p0 = uint64_t(kMulA) * uint32_t(x0);
      const uint64_t p1 = uint64_t(kMulB) * uint32_t(x2);
      x0 = W(p1 >> 32) ^ x1 ^ ks.k0[r];
      x2 = W(p0 >> 32) ^ x3 ^ ks.k1[r];
      x1 = W(uint32_t(p1));
      x3 = W(uint32_t(p0));
    }
    // Word k of block j belongs to element 4j + k. A select, not a branch.
    out[4 * j + 0] = uint32_t(x0) >= t32 ? scale : T(0);
    out[4 * j + 1] = uint32_t(x1) >= t32 ? scale : T(0);
    out[4 * j + 2] = uint32_t(x2) >= t32 ? scale : T(0);
    out[4 * j + 3] = uint32_t(x3) >= t32 ? scale : T(0);
  }
}

// Elements [e0, e1) with e0 a multiple of 4 into out[0, e1 - e0): whole
// batches, then whole blocks, then the part of the last block before e1.
template <class T, class W>
FM_ALWAYS_INLINE void mask_range_body(T* out, index_t e0, index_t e1, uint32_t c1, uint32_t c2,
                                      uint32_t c3, const KeySchedule& ks, uint64_t seed,
                                      uint32_t t32, T scale) {
  index_t e = e0;
  for (; e + 4 * kLanes <= e1; e += 4 * kLanes)
    mask_batch<T, W>(out + (e - e0), uint64_t(e) / 4, c1, c2, c3, ks, t32, scale);
  for (; e < e1; e += 4) {
    const auto blk = Philox4x32::generate(uint32_t(uint64_t(e) / 4), c1, c2, c3, seed);
    const index_t m = std::min<index_t>(4, e1 - e);
    for (index_t k = 0; k < m; ++k) out[e - e0 + k] = blk.v[k] >= t32 ? scale : T(0);
  }
}

template <class T>
void mask_range_generic(T* mask, index_t e0, index_t e1, uint32_t c1, uint32_t c2, uint32_t c3,
                        const KeySchedule& ks, uint64_t seed, uint32_t t32, T scale) {
  mask_range_body<T, uint32_t>(mask, e0, e1, c1, c2, c3, ks, seed, t32, scale);
}

#if defined(FM_DROPOUT_AVX512)
// Internal linkage (anonymous namespace) and always_inline callees: no
// AVX-512 instruction can reach a caller that did not check the CPU.
template <class T>
__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl"))) void mask_range_avx512(
    T* mask, index_t e0, index_t e1, uint32_t c1, uint32_t c2, uint32_t c3, const KeySchedule& ks,
    uint64_t seed, uint32_t t32, T scale) {
  mask_range_body<T, uint64_t>(mask, e0, e1, c1, c2, c3, ks, seed, t32, scale);
}

bool use_avx512() {
  static const bool cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return cpu && std::strcmp(gemm_kernel_name(), "avx512") == 0;
}
#else
bool use_avx512() { return false; }
#endif

template <class T>
void mask_range(bool avx512, T* mask, index_t e0, index_t e1, uint32_t c1, uint32_t c2,
                uint32_t c3, const KeySchedule& ks, uint64_t seed, uint32_t t32, T scale) {
#if defined(FM_DROPOUT_AVX512)
  if (avx512) return mask_range_avx512<T>(mask, e0, e1, c1, c2, c3, ks, seed, t32, scale);
#endif
  (void)avx512;
  mask_range_generic<T>(mask, e0, e1, c1, c2, c3, ks, seed, t32, scale);
}

}  // namespace

template <class T>
void dropout_mask(T* mask, index_t count, double p, uint64_t seed, uint64_t step, uint32_t layer,
                  index_t first) {
  if (count <= 0) return;
  // p == 0 keeps everything (threshold 0) at scale 1 exactly; skip the draws.
  if (p <= 0.0) {
    std::fill(mask, mask + count, T(1));
    return;
  }
  const Threshold th(p);
  if (th.t > 0xFFFFFFFFull) {  // p > 1 - 2^-32: no word can reach it
    std::fill(mask, mask + count, T(0));
    return;
  }
  const uint32_t t32 = uint32_t(th.t);
  const T scale = T(1.0 / (1.0 - p));  // rounded once from double, as the reference
  const uint32_t c1 = uint32_t(step), c3 = uint32_t(step >> 32);
  const uint32_t c2 = uint32_t(RngStream::dropout) | (layer << 8);
  const KeySchedule ks(seed);
  const bool avx512 = use_avx512();

  // Elements [first, first + count): a partial block up to the next multiple
  // of 4 (a data-parallel rank's rows may start anywhere in the batch), then
  // the rest from an aligned element.
  index_t e0 = first;
  if (e0 % 4 != 0) {
    const index_t a = e0 - e0 % 4, head = std::min<index_t>(a + 4, first + count);
    const auto blk = Philox4x32::generate(uint32_t(uint64_t(a) / 4), c1, c2, c3, seed);
    for (index_t e = e0; e < head; ++e) mask[e - first] = blk.v[e - a] >= t32 ? scale : T(0);
    e0 = head;
  }
  T* out = mask + (e0 - first);
  const index_t rest = first + count - e0;
  if (rest <= 0) return;

  // Threads take contiguous runs of whole batches; every draw is a function
  // of its element index alone, so the split cannot change a bit.
  constexpr index_t kBatch = 4 * kLanes;
  const index_t n_batches = (rest + kBatch - 1) / kBatch;
  const int nt = int(std::min<index_t>(threads_for(double(rest) * 16.0), n_batches));
#if defined(_OPENMP)
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      const index_t t = thread_id(), nteam = team_size();
      note_team(int(nteam));
      const index_t b0 = n_batches * t / nteam, b1 = n_batches * (t + 1) / nteam;
      mask_range<T>(avx512, out + b0 * kBatch, e0 + b0 * kBatch,
                    e0 + std::min(rest, b1 * kBatch), c1, c2, c3, ks, seed, t32, scale);
    }
    return;
  }
#endif
  (void)nt;
  mask_range<T>(avx512, out, e0, e0 + rest, c1, c2, c3, ks, seed, t32, scale);
}

template <class T>
void apply_mask(T* y, const T* x, const T* mask, index_t count) {
  // y may alias x: each element is read, then written, in one iteration.
  parallel_for_simd(count, threads_for(double(count)), [&](index_t i) { y[i] = x[i] * mask[i]; });
}

template void dropout_mask<float>(float*, index_t, double, uint64_t, uint64_t, uint32_t, index_t);
template void dropout_mask<double>(double*, index_t, double, uint64_t, uint64_t, uint32_t,
                                    index_t);
template void apply_mask<float>(float*, const float*, const float*, index_t);
template void apply_mask<double>(double*, const double*, const double*, index_t);

}  // namespace fastmlp
