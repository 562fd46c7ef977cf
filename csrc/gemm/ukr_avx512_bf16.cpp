// AVX512-BF16 micro-kernels (VDPBF16PS), compiled with -mavx512bf16 -mavx512f
// for this file only and selected at run time when cpuid reports AVX512_BF16
// (dispatch.cpp). Operand layout: ukr.h (Bf16Kernel), packed by gemm_bf16().
//
// Tile 12 x 32 like the float32 AVX-512 kernel: 24 zmm accumulators; per pair
// of k steps two B loads (16 columns x 2 k each), 12 broadcasts of a 32-bit
// A pair and 24 VDPBF16PS, each 16 lanes x 2 multiply-adds: twice the work of
// a float32 FMA per instruction. The narrow tile is 12 x 16.
//
// VDPBF16PS treats bf16 denormal inputs as zero and flushes denormal results
// (whatever MXCSR says), and it may add its two products in either order
// (Intel's pseudo-code adds the odd one first): results can differ from the
// portable kernel's by the rounding of those additions, and below 1.2e-38.
// GCC 12's AVX-512 shift and convert intrinsics pass _mm512_undefined_*() as
// their unused merge operand, which -Wmaybe-uninitialized reports once they
// are inlined (GCC bug 105593, fixed in GCC 13): silenced for this unit only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "common/restrict.h"
#include "gemm/ukr.h"

namespace fastmlp {
namespace avx512bf16 {
namespace {

template <int MR, int NV>
void ukr_bf16(index_t kp, const std::uint32_t* FM_RESTRICT a, const std::uint32_t* FM_RESTRICT b,
              index_t ldb,
              float* FM_RESTRICT c, index_t ldc, index_t m, index_t n, float alpha, float beta) {
  constexpr int W = 16;
  __m512 acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();

  for (index_t q = 0; q < kp; ++q) {
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = (__m512bh)_mm512_loadu_si512(b + j * W);
    __builtin_prefetch(b + 8 * ldb);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(int(a[i]));
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], ai, bv[j]);
    }
    a += MR;
    b += ldb;
  }

  if (alpha != 1.0f) {
    const __m512 va = _mm512_set1_ps(alpha);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_mul_ps(acc[i][j], va);
  }
  const __m512 vb = _mm512_set1_ps(beta);
  // Rows beyond m are skipped, columns beyond n masked; beta == 0 never reads C.
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    float* ci = c + i * ldc;
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      const index_t left = n - index_t(j) * W;
      if (left <= 0) break;
      const __mmask16 k = left >= W ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1u);
      __m512 r = acc[i][j];
      if (beta == 1.0f)
        r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(k, ci + j * W));
      else if (beta != 0.0f)
        r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k, ci + j * W), r);
      _mm512_mask_storeu_ps(ci + j * W, k, r);
    }
  }
}

// Rounding as common/bf16.h, bit for bit (not VCVTNE2PS2BF16, which flushes
// denormal inputs to zero), here rather than through that header: an inline
// function of the shared namespace compiled with this unit's flags could be
// the copy the linker keeps for every caller.
inline std::uint32_t bits_scalar(float x) {
  std::uint32_t u;
  __builtin_memcpy(&u, &x, sizeof u);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (u >> 16) | 0x0040u;
  return (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
}

// 16 floats -> their bf16 bits in the low half of each 32-bit lane.
inline __m512i bits16(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i hi = _mm512_srli_epi32(u, 16);
  const __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  const __m512i r =
      _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(
      _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
  return _mm512_mask_blend_epi32(nan, r, _mm512_or_si512(hi, _mm512_set1_epi32(0x0040)));
}

inline __mmask16 first(index_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

// PackBf16Fn (ukr.h).
void pack_bf16(std::uint32_t* FM_RESTRICT dst, bool k_contig, const float* x, index_t ldx,
               index_t r0, index_t rows, index_t p0, index_t kc, int R) {
  const index_t kfull = kc / 2, kp = (kc + 1) / 2;
  if (!k_contig) {
    // Rows along the vector: two k rows of the source make one row of words.
    for (index_t q = 0; q < kp; ++q) {
      const float* s0 = x + (p0 + 2 * q) * ldx + r0;
      const float* s1 = s0 + ldx;
      const bool pad = q == kfull;  // odd kc: the last pair's high half is zero
      std::uint32_t* d = dst + q * R;
      for (index_t r = 0; r < R; r += 16) {
        const __mmask16 m = r < rows ? first(rows - r) : __mmask16(0);
        const __m512i lo = bits16(_mm512_maskz_loadu_ps(m, s0 + r));
        const __m512i hi = pad ? _mm512_setzero_si512() : bits16(_mm512_maskz_loadu_ps(m, s1 + r));
        const __m512i w = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
        _mm512_mask_storeu_epi32(d + r, first(R - r), w);  // masked-off lanes of m are zero
      }
    }
    return;
  }
  // Each row is contiguous along k: 32 floats give 16 words, (x[2q], x[2q+1])
  // each, which go down a column of dst (stride R).
  alignas(64) std::uint32_t words[16];
  for (index_t r = 0; r < rows; ++r) {
    const float* src = x + (r0 + r) * ldx + p0;
    std::uint32_t* d = dst + r;
    index_t q = 0;
    for (; q + 16 <= kfull; q += 16) {
      const __m512i a = bits16(_mm512_loadu_ps(src + 2 * q));
      const __m512i b = bits16(_mm512_loadu_ps(src + 2 * q + 16));
      // In 64-bit lanes (x[2j+1] bits << 32 | x[2j] bits): fold the high one
      // down by 16 and keep the low 32 bits of each lane.
      const __m256i wa = _mm512_cvtepi64_epi32(_mm512_or_si512(a, _mm512_srli_epi64(a, 16)));
      const __m256i wb = _mm512_cvtepi64_epi32(_mm512_or_si512(b, _mm512_srli_epi64(b, 16)));
      _mm256_store_si256(reinterpret_cast<__m256i*>(words), wa);
      _mm256_store_si256(reinterpret_cast<__m256i*>(words + 8), wb);
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) d[(q + j) * R] = words[j];
    }
    for (; q < kfull; ++q)
      d[q * R] = bits_scalar(src[2 * q]) | (bits_scalar(src[2 * q + 1]) << 16);
    if (kc % 2) d[kfull * R] = bits_scalar(src[kc - 1]);
  }
  for (index_t r = rows; r < R; ++r)
    for (index_t q = 0; q < kp; ++q) dst[q * R + r] = 0;
}

}  // namespace

// Blocks as the float32 AVX-512 kernel's in bytes of A (mc x kc: 96 x 2048
// bf16 = 384 KiB, in L2), with the B panel kc x nc = 2048 x 2048 bf16 = 8 MiB.
const Bf16Kernel kBf16 = {&ukr_bf16<12, 2>, &ukr_bf16<12, 1>, &pack_bf16, 12, 32, 12, 16, 96, 2048, 2048,
                          "avx512_bf16"};

}  // namespace avx512bf16
}  // namespace fastmlp
