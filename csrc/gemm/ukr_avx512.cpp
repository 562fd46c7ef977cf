// AVX-512F micro-kernels (512-bit registers, 32 of them), compiled with
// -mavx512f -mavx2 -mfma for this file only and selected at run time (dispatch.cpp).
//
// float: 12 x 32 tile (24 zmm accumulators, 2 B loads and 12 broadcasts per
// k step); double: 6 x 32 (24 accumulators, 4 B loads and 6 broadcasts).
// Both leave room for the B vectors and a broadcast in the 32-register file,
// and 24 independent chains cover the FMA latency on cores with one or two
// 512-bit FMA ports.
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

}  // namespace

const GemmKernel<float> kSgemm = {ukr_pair<F32, 12, 2>(), ukr_pair<F32, 12, 1>(), 96, 1024, 4096, true,
    &pack_bt_sliver, &act_run_f32, &act_back_run<float>, "avx512", ukr_pair<F32, 12, 2, true>(),
    {short_rows<F32, 4, 2, 1>(), short_rows<F32, 8, 2, 1>()}};
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
