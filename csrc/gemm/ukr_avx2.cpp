// AVX2 + FMA micro-kernels (256-bit registers, 16 of them), compiled with
// -mavx2 -mfma for this file only and selected at run time (dispatch.cpp).
//
// float: 6 x 16 tile (12 ymm accumulators + 2 B vectors + 1 broadcast = 15
// registers); double: 6 x 8. 12 independent chains cover 2 FMA ports x
// 4-5 cycles of latency.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/restrict.h"
#include "gemm/ukr.h"
#include "nn/activations.h"

namespace fastmlp {
namespace avx2 {
namespace {

// Lane masks for maskload/maskstore: the first n of 8 lanes set.
alignas(32) const int kLaneMask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

struct F32 {
  using T = float;
  using R = __m256;
  static constexpr int W = 8;
  static R zero() { return _mm256_setzero_ps(); }
  static R load(const T* p) { return _mm256_loadu_ps(p); }
  static R bcast(const T* p) { return _mm256_broadcast_ss(p); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static void store(T* p, R r) { _mm256_storeu_ps(p, r); }
  static __m256i mask(int n) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMask + 8 - n));
  }
  static R load_n(const T* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static void store_n(T* p, R r, int n) { _mm256_maskstore_ps(p, mask(n), r); }
};

struct F64 {
  using T = double;
  using R = __m256d;
  static constexpr int W = 4;
  static R zero() { return _mm256_setzero_pd(); }
  static R load(const T* p) { return _mm256_loadu_pd(p); }
  static R bcast(const T* p) { return _mm256_broadcast_sd(p); }
  static R fma(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R mul(R a, R b) { return _mm256_mul_pd(a, b); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static void store(T* p, R r) { _mm256_storeu_pd(p, r); }
  // 64-bit lanes: two 32-bit mask words per lane.
  static __m256i mask(int n) {
    return _mm256_cvtepi32_epi64(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(kLaneMask + 8 - n)));
  }
  static R load_n(const T* p, int n) { return _mm256_maskload_pd(p, mask(n)); }
  static void store_n(T* p, R r, int n) { _mm256_maskstore_pd(p, mask(n), r); }
};

#include "gemm/ukr_simd.h"
#include "gemm/pack_avx2.h"

}  // namespace

const GemmKernel<float> kSgemm = {ukr_pair<F32, 6, 2>(), ukr_pair<F32, 6, 1>(), 144, 256, 4096, true,
    &pack_bt_sliver, &act_run_f32, &act_back_run<float>, "avx2", {},
    {short_rows<F32, 2, 2, 1>(), short_rows<F32, 4, 2, 1>()}};
const GemmKernel<double> kDgemm = {ukr_pair<F64, 6, 2>(), ukr_pair<F64, 6, 1>(), 96, 256, 4096, true,
    &pack_bt_sliver, nullptr, &act_back_run<double>, "avx2", {},
    {short_rows<F64, 2, 2, 1>(), short_rows<F64, 4, 2, 1>()}};

double fma_probe(bool dbl, long long iters, double* flops) {
  return fma_probe_with<F32, F64, 12>(dbl, iters, flops);
}

}  // namespace avx2
}  // namespace fastmlp
