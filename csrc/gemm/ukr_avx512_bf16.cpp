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

#include <algorithm>
#include <cstdint>

#include "common/restrict.h"
#include "gemm/ukr.h"

namespace fastmlp {
namespace avx512bf16 {
namespace {

// AS: words between one pair step's A values and the next (MR, or the full
// tile's MR for an edge sliver's shorter kernel).
template <int MR, int NV, bool Stream = false, int AS = MR>
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
    a += AS;
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
      if (Stream && beta == 0.0f && k == __mmask16(0xFFFF) && starts_line(ci + j * W)) {
        _mm512_stream_ps(ci + j * W, r);
        continue;
      }
      if (beta == 1.0f)
        r = _mm512_add_ps(r, _mm512_maskz_loadu_ps(k, ci + j * W));
      else if (beta != 0.0f)
        r = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(k, ci + j * W), r);
      _mm512_mask_storeu_ps(ci + j * W, k, r);
    }
  }
  if (Stream) _mm_sfence();  // streamed rows ordered before the caller's next stores
}

// The bf16 pairs of 32 floats, lo's 16 in words 0..7 (each word two
// neighbours of lo) and hi's in words 8..15, by VCVTNE2PS2BF16: round to
// nearest even as common/bf16.h rounds, NaN quieted, except that it reads
// float32 denormals as zero. Every product of these words goes through
// VDPBF16PS, which reads bf16 denormals as zero as well, so the only inputs
// whose products could differ are the denormals that common/bf16.h rounds
// up to the smallest normal bf16 (magnitudes 0x007F8000..0x007FFFFF): those
// are first moved up by 0x8000 (to 0x00800000..0x00807FFF, normal, which
// round to that same 0x0080). The products are then those of common/bf16.h's
// rounding, bit for bit, for every input.
inline __m512 lift_top_denormals(__m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i mag = _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF));
  const __mmask16 band = _mm512_cmplt_epu32_mask(
      _mm512_sub_epi32(mag, _mm512_set1_epi32(0x007F8000)), _mm512_set1_epi32(0x8000));
  return _mm512_castsi512_ps(_mm512_mask_add_epi32(u, band, u, _mm512_set1_epi32(0x8000)));
}

inline __m512i pairs32(__m512 lo, __m512 hi) {
  return (__m512i)_mm512_cvtne2ps_pbh(lift_top_denormals(hi), lift_top_denormals(lo));
}

inline __mmask16 first(index_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1u); }

// w[i] (row i, 16 dwords) -> w[j] = column j: the 16 x 16 dword transpose.
inline void transpose16(__m512i* w) {
  __m512i t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(w[i], w[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(w[i], w[i + 1]);
  }
  // Per 128-bit lane L, w[4g + j] = column 4L + j of rows 4g..4g+3.
#pragma GCC unroll 4
  for (int g = 0; g < 16; g += 4) {
    w[g] = _mm512_unpacklo_epi64(t[g], t[g + 2]);
    w[g + 1] = _mm512_unpackhi_epi64(t[g], t[g + 2]);
    w[g + 2] = _mm512_unpacklo_epi64(t[g + 1], t[g + 3]);
    w[g + 3] = _mm512_unpackhi_epi64(t[g + 1], t[g + 3]);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm512_shuffle_i32x4(w[j], w[4 + j], 0x88);       // lanes 0, 2
    t[4 + j] = _mm512_shuffle_i32x4(w[j], w[4 + j], 0xdd);   // lanes 1, 3
    t[8 + j] = _mm512_shuffle_i32x4(w[8 + j], w[12 + j], 0x88);
    t[12 + j] = _mm512_shuffle_i32x4(w[8 + j], w[12 + j], 0xdd);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    w[j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0x88);
    w[8 + j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0xdd);
    w[4 + j] = _mm512_shuffle_i32x4(t[4 + j], t[12 + j], 0x88);
    w[12 + j] = _mm512_shuffle_i32x4(t[4 + j], t[12 + j], 0xdd);
  }
}

// A store of up to 16 words. Stream: a whole, aligned line goes around the
// caches (a weight panel, written once per step and read in the next pass,
// would otherwise first be read from memory and then evict the data the
// step still uses).
template <bool Stream>
inline void put16(std::uint32_t* p, __mmask16 keep, __m512i w) {
  if (Stream && keep == __mmask16(0xFFFF) && starts_line(p))
    _mm512_stream_si512(reinterpret_cast<__m512i*>(p), w);
  else
    _mm512_mask_storeu_epi32(p, keep, w);
}

// PackBf16Fn (ukr.h); Stream for Bf16Kernel::pack_panel.
template <bool Stream>
void pack_bf16(std::uint32_t* FM_RESTRICT dst, bool k_contig, const float* x, index_t ldx,
               index_t r0, index_t rows, index_t p0, index_t kc, int R, index_t ss) {
  const index_t kfull = kc / 2, kp = (kc + 1) / 2;
  const index_t slivers = (rows + R - 1) / R;
  if (!k_contig) {
    // Row 2q's and row 2q+1's bf16 (halves 0..15 and 16..31 of pairs32)
    // interleaved into words (2q, 2q+1) of each lane.
    const __m512i interleave =
        _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                         6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    // Rows along the vector: two k rows of the source make one row of words
    // in every sliver, so the source is read row after row, contiguously
    // (reading one sliver's strip down all k rows first starts a new page
    // at every row of a 4 KiB-wide matrix, beyond the prefetchers' reach).
    for (index_t q = 0; q < kp; ++q) {
      const float* s0 = x + (p0 + 2 * q) * ldx + r0;
      const float* s1 = s0 + ldx;
      const bool pad = q == kfull;  // odd kc: the last pair's high half is zero
      for (index_t sl = 0; sl < slivers; ++sl) {
        std::uint32_t* d = dst + sl * ss + q * R;
        for (index_t r = 0; r < R; r += 16) {
          const index_t g = sl * R + r;  // row of the block
          const __mmask16 m = (g < rows ? first(rows - g) : __mmask16(0)) & first(R - r);
          const __m512 lo = _mm512_maskz_loadu_ps(m, s0 + g);
          const __m512 hi = pad ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, s1 + g);
          const __m512i w = _mm512_permutexvar_epi16(interleave, pairs32(lo, hi));
          put16<Stream>(d + r, first(R - r), w);  // masked-off lanes of m are zero
        }
      }
    }
    if (Stream) _mm_sfence();  // streamed lines ordered before the caller's next stores
    return;
  }
  // Each row is contiguous along k. Blocks of 16 rows x 16 pairs: each row's
  // 32 floats become 16 words in one register (one pairs32: neighbours
  // along k are already the two halves of a word), a 16 x 16 transpose in
  // registers turns the rows into pair rows, and each pair row is one store
  // of 16 words into dst. The block
  // written is 16 x R words, so it stays in L1 while its rows are gathered
  // (storing word by word down a column of dst, R words apart, evicted each
  // line of a sliver longer than L1 before its neighbour was written: 3-4 ns
  // a word on Zen 4). Masked loads give the zeros of an odd kc's last pair
  // and of the rows beyond `rows`.
  constexpr index_t kAhead = 128;  // floats ahead along each row that are prefetched
  for (index_t sl = 0; sl < slivers; ++sl, dst += ss, r0 += R, rows -= R) {
  for (index_t q0 = 0; q0 < kp; q0 += 16) {
    const index_t nf = std::min<index_t>(32, kc - 2 * q0);  // floats of this block per row
    const __mmask16 lo = first(nf), hi = nf > 16 ? first(nf - 16) : __mmask16(0);
    const int nq = int(std::min<index_t>(16, kp - q0));
    for (int rb = 0; rb < R; rb += 16) {
      __m512i w[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) {
        if (rb + i < rows) {
          const float* src = x + (r0 + rb + i) * ldx + p0 + 2 * q0;
          _mm_prefetch(reinterpret_cast<const char*>(src + kAhead), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(src + kAhead + 16), _MM_HINT_T0);
          w[i] = pairs32(_mm512_maskz_loadu_ps(lo, src), _mm512_maskz_loadu_ps(hi, src + 16));
        } else {
          w[i] = _mm512_setzero_si512();
        }
      }
      transpose16(w);
      const __mmask16 keep = first(R - rb);
      for (int j = 0; j < nq; ++j) put16<Stream>(dst + (q0 + j) * R + rb, keep, w[j]);
    }
  }
  }
  if (Stream) _mm_sfence();
}

}  // namespace

// Blocks as the float32 AVX-512 kernel's in bytes of A (mc x kc: 96 x 2048
// bf16 = 384 KiB, in L2), with the B panel kc x nc = 2048 x 2048 bf16 = 8 MiB.
// Edge slivers of at most 4, 8 or 10 rows (a batch of 256 ends in 4; an
// output layer of 10 classes is one sliver of 10) run 4-, 8- and 10-row
// kernels over the 12-row sliver's pairs.
const Bf16Kernel kBf16 = {&ukr_bf16<12, 2>, &ukr_bf16<12, 1>, &ukr_bf16<12, 2, true>, &pack_bf16<false>, &pack_bf16<true>, 12, 32, 12, 16, 96, 2048, 2048,
                          "avx512_bf16",
                          {{4, &ukr_bf16<4, 2, false, 12>, &ukr_bf16<4, 1, false, 12>},
                           {8, &ukr_bf16<8, 2, false, 12>, &ukr_bf16<8, 1, false, 12>},
                           {10, &ukr_bf16<10, 2, false, 12>, &ukr_bf16<10, 1, false, 12>}}};

}  // namespace avx512bf16
}  // namespace fastmlp
