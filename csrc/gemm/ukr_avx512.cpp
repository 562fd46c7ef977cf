// AVX-512F micro-kernels (512-bit registers, 32 of them), compiled with
// -mavx512f -mavx2 -mfma for this file only and selected at run time (dispatch.cpp).
//
// float: 12 x 32 tile (24 zmm accumulators, 2 B loads and 12 broadcasts per
// k step); double: 6 x 32 (24 accumulators, 4 B loads and 6 broadcasts).
// Both leave room for the B vectors and a broadcast in the 32-register file,
// and 24 independent chains cover the FMA latency on cores with one or two
// 512-bit FMA ports.
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as an unused merge
// operand, which -Wmaybe-uninitialized reports once they are inlined (GCC bug
// 105593, fixed in GCC 13): silenced for this unit only, as for the bf16 one.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/restrict.h"
#include "gemm/ukr.h"
#include "nn/activations.h"

namespace fastmlp {
namespace avx512 {
namespace {

struct F32 {
  using T = float;
  using R = __m512;
  static constexpr int W = 16;
  static R zero() { return _mm512_setzero_ps(); }
  static R load(const T* p) { return _mm512_loadu_ps(p); }
  static R bcast(const T* p) { return _mm512_set1_ps(*p); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static void store(T* p, R r) { _mm512_storeu_ps(p, r); }
  static void stream(T* p, R r) { _mm512_stream_ps(p, r); }  // p 64-byte aligned
  static __mmask16 mask(int n) { return __mmask16((1u << n) - 1u); }
  static R load_n(const T* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store_n(T* p, R r, int n) { _mm512_mask_storeu_ps(p, mask(n), r); }
};

struct F64 {
  using T = double;
  using R = __m512d;
  static constexpr int W = 8;
  static R zero() { return _mm512_setzero_pd(); }
  static R load(const T* p) { return _mm512_loadu_pd(p); }
  static R bcast(const T* p) { return _mm512_set1_pd(*p); }
  static R fma(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R mul(R a, R b) { return _mm512_mul_pd(a, b); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static void store(T* p, R r) { _mm512_storeu_pd(p, r); }
  static void stream(T* p, R r) { _mm512_stream_pd(p, r); }  // p 64-byte aligned
  static __mmask8 mask(int n) { return __mmask8((1u << n) - 1u); }
  static R load_n(const T* p, int n) { return _mm512_maskz_loadu_pd(mask(n), p); }
  static void store_n(T* p, R r, int n) { _mm512_mask_storeu_pd(p, mask(n), r); }
};

#include "gemm/ukr_simd.h"
#include "gemm/pack_avx2.h"

// ---------------------------------------------------------------------------
// float32 tanh and sigmoid and their derivatives, 16 lanes at a time, with no
// division: a reciprocal estimate (VRCP14PS) and one Newton step on the
// exact denominator, 2^n by VSCALEFPS (which rounds a subnormal result once).
// Exhaustively over all 2^32 inputs against double: tanh within 1.5 ulp,
// sigmoid 2.2, tanh' and sigmoid' 3.5 (tests/test_extremes.py allows 8 and
// checks NaN, the infinities and the tails). 0.5 ns an element where the
// baseline loops of nn/activations.h (which round differently, within the
// same bound) take 0.75-0.8 on a Zen 4 core.

inline __m512 splat(float v) { return _mm512_set1_ps(v); }

// 1 / (hi + lo) for hi in [1, 2^28], |lo| <= ulp(hi)/2: rcp14, then one
// Newton step on the exact denominator (error about half an ulp).
inline __m512 recip16(__m512 hi, __m512 lo) {
  const __m512 rc = _mm512_rcp14_ps(hi);
  __m512 res = _mm512_fnmadd_ps(hi, rc, splat(1.0f));
  res = _mm512_fnmadd_ps(lo, rc, res);
  return _mm512_fmadd_ps(rc, res, rc);
}

// e^x for x <= 0 (NaN stays NaN); below -104 it is 0. Rounded once by the
// final scaling, subnormal results included.
inline __m512 exp_neg16(__m512 x) {
  x = _mm512_max_ps(splat(-104.0f), x);  // a NaN x stays (the second operand)
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, splat(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, splat(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, splat(-2.12194440e-4f), r);
  __m512 p = splat(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, splat(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, splat(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, splat(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, splat(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, splat(5.0000001201e-1f));
  p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, splat(1.0f)));
  return _mm512_scalef_ps(p, n);
}

// (hi, lo) = a + b exactly (Fast2Sum on the larger and the smaller).
inline __m512 sum_lo(__m512 a, __m512 b, __m512 hi) {
  return _mm512_sub_ps(_mm512_min_ps(a, b), _mm512_sub_ps(hi, _mm512_max_ps(a, b)));
}

inline __m512 sign_of(__m512 z) {
  return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(int(0x80000000u))));
}

// tanh(z) = sign(z) E / (E + 2) with E = e^{2|z|} - 1, which has no
// cancellation: 2|z| = (n + f) ln2 with n = floor(.), r = f ln2 in [0, ln2),
// E = 2^n (e^r - 1) + (2^n - 1), both terms >= 0 (e^r - 1 by its Taylor
// series through r^9: truncation below 2e-8 relative). |z| > 9.5 gives 1.
inline __m512 tanh16(__m512 z) {
  const __m512 a = _mm512_min_ps(splat(9.5f), _mm512_abs_ps(z));
  const __m512 x = _mm512_add_ps(a, a);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, splat(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, splat(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, splat(1.428606765330187e-06f), r);
  __m512 q = splat(1.0f / 362880.0f);
  q = _mm512_fmadd_ps(q, r, splat(1.0f / 40320.0f));
  q = _mm512_fmadd_ps(q, r, splat(1.0f / 5040.0f));
  q = _mm512_fmadd_ps(q, r, splat(1.0f / 720.0f));
  q = _mm512_fmadd_ps(q, r, splat(1.0f / 120.0f));
  q = _mm512_fmadd_ps(q, r, splat(1.0f / 24.0f));
  q = _mm512_fmadd_ps(q, r, splat(1.0f / 6.0f));
  q = _mm512_fmadd_ps(q, r, splat(0.5f));
  const __m512 p = _mm512_fmadd_ps(_mm512_mul_ps(r, r), q, r);  // e^r - 1
  const __m512 s = _mm512_scalef_ps(splat(1.0f), n);            // 2^n
  const __m512 E = _mm512_fmadd_ps(s, p, _mm512_sub_ps(s, splat(1.0f)));
  const __m512 d = _mm512_add_ps(E, splat(2.0f));
  const __m512 lo = sum_lo(E, splat(2.0f), d);
  const __m512 rc = _mm512_rcp14_ps(d);
  __m512 rc2 = _mm512_fmadd_ps(rc, _mm512_fnmadd_ps(d, rc, splat(1.0f)), rc);
  __m512 t = _mm512_mul_ps(E, rc2);
  __m512 res = _mm512_fnmadd_ps(t, d, E);
  res = _mm512_fnmadd_ps(t, lo, res);
  t = _mm512_fmadd_ps(res, rc2, t);
  return _mm512_castsi512_ps(
      _mm512_or_si512(_mm512_castps_si512(t), _mm512_castps_si512(sign_of(z))));
}

// sigmoid(z): s = 1 / (1 + e), e = e^{-|z|}; s for z >= 0, e s below.
inline __m512 sigmoid16(__m512 z) {
  const __m512 e = exp_neg16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(z)));
  const __m512 den = _mm512_add_ps(e, splat(1.0f));
  const __m512 s = recip16(den, sum_lo(e, splat(1.0f), den));
  const __mmask16 neg = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_mul_ps(s, neg, s, e);
}

// tanh'(z) = 4e / (1 + e)^2, e = e^{-2|z|}; sigmoid'(z) = e / (1 + e)^2, e = e^{-|z|}.
template <bool Tanh>
inline __m512 deriv16(__m512 z) {
  __m512 a = _mm512_abs_ps(z);
  if (Tanh) a = _mm512_add_ps(a, a);
  const __m512 e = exp_neg16(_mm512_sub_ps(_mm512_setzero_ps(), a));
  const __m512 den = _mm512_add_ps(e, splat(1.0f));
  const __m512 s = recip16(den, sum_lo(e, splat(1.0f), den));
  const __m512 es = _mm512_mul_ps(Tanh ? _mm512_mul_ps(e, splat(4.0f)) : e, s);
  return _mm512_mul_ps(es, s);
}

void act_run_avx512(float* y, const float* z, index_t len, Act act) {
  const bool th = act == Act::tanh;
  index_t i = 0;
  for (; i + 16 <= len; i += 16) {
    const __m512 v = _mm512_loadu_ps(z + i);
    _mm512_storeu_ps(y + i, th ? tanh16(v) : sigmoid16(v));
  }
  if (i < len) {
    const __mmask16 m = __mmask16((1u << (len - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, z + i);
    _mm512_mask_storeu_ps(y + i, m, th ? tanh16(v) : sigmoid16(v));
  }
}

// dz = dy * act'(z); dz may equal dy (each element read before it is written).
void act_back_run_avx512(float* dz, const float* dy, const float* z, index_t len, Act act) {
  const bool th = act == Act::tanh;
  index_t i = 0;
  for (; i + 16 <= len; i += 16) {
    const __m512 v = _mm512_loadu_ps(z + i);
    const __m512 d = th ? deriv16<true>(v) : deriv16<false>(v);
    _mm512_storeu_ps(dz + i, _mm512_mul_ps(_mm512_loadu_ps(dy + i), d));
  }
  if (i < len) {
    const __mmask16 m = __mmask16((1u << (len - i)) - 1u);
    const __m512 v = _mm512_maskz_loadu_ps(m, z + i);
    const __m512 d = th ? deriv16<true>(v) : deriv16<false>(v);
    _mm512_mask_storeu_ps(dz + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, dy + i), d));
  }
}

}  // namespace

const GemmKernel<float> kSgemm = {ukr_pair<F32, 12, 2>(), ukr_pair<F32, 12, 1>(), 96, 1024, 4096, true,
    &pack_bt_sliver, &act_run_avx512, &act_back_run_avx512, "avx512", ukr_pair<F32, 12, 2, true>(),
    {short_rows<F32, 4, 2, 1>(), short_rows<F32, 8, 2, 1>(), short_rows<F32, 10, 2, 1>()}};
// float64 uses a 6 x 32 tile (four vectors of B, six broadcasts per k step:
// 10 loads for 24 FMAs instead of 14): on a Zen 5 core with full-rate 512-bit
// FMAs, 1024^3 went from 104-110 to 108-114 GFLOP/s of a 133 peak, with the
// two-vector 6 x 16 kernel for thin results and half-width edge tiles.
const GemmKernel<double> kDgemm = {ukr_pair<F64, 6, 4>(), ukr_pair<F64, 6, 2>(), 144, 512, 4096, true,
    &pack_bt_sliver, nullptr, &act_back_run<double>, "avx512", ukr_pair<F64, 6, 4, true>(),
    {short_rows<F64, 2, 4, 2>(), short_rows<F64, 4, 4, 2>()}};

double fma_probe(bool dbl, long long iters, double* flops) {
  return fma_probe_with<F32, F64, 24>(dbl, iters, flops);
}

}  // namespace avx512
}  // namespace fastmlp
