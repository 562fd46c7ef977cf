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

}  // namespace

// Blocks as the float32 AVX-512 kernel's in bytes of A (mc x kc: 96 x 2048
// bf16 = 384 KiB, in L2), with the B panel kc x nc = 2048 x 2048 bf16 = 8 MiB.
const Bf16Kernel kBf16 = {&ukr_bf16<12, 2>, &ukr_bf16<12, 1>, 12, 32, 12, 16, 96, 2048, 2048,
                          "avx512_bf16"};

}  // namespace avx512bf16
}  // namespace fastmlp
