// Portable micro-kernels: plain C++ written so that the compiler keeps the
// MR x NR accumulator tile in vector registers at the baseline ISA (SSE2 on
// x86-64, NEON on arm64). The fallback when no wider kernel applies.
#include <cstdint>

#include "common/bf16.h"
#include "common/restrict.h"
#include "gemm/ukr.h"

namespace fastmlp {
namespace generic {
namespace {

template <class T, int MR, int NR, bool ROWS>
void ukr(index_t kc, const T* FM_RESTRICT a, index_t lda, const T* FM_RESTRICT b, index_t ldb,
         T* FM_RESTRICT c, index_t ldc, index_t m, index_t n, T alpha, T beta) {
  T acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = T(0);
  for (index_t p = 0; p < kc; ++p) {
    const T* bp = b + p * ldb;
    for (int i = 0; i < MR; ++i) {
      const T ai = ROWS ? a[i * lda + p] : a[p * lda + i];
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * bp[j];
    }
  }
  if (beta == T(0)) {
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) c[i * ldc + j] = alpha * acc[i][j];
  } else {
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) c[i * ldc + j] = alpha * acc[i][j] + beta * c[i * ldc + j];
  }
}

// The portable bf16 kernel: the same packed pairs as the AVX512-BF16 kernel,
// each bf16 widened to float32 (exact) and multiplied in float32, which is
// exact too (8-bit significands: the product needs 16 bits); only the
// float32 additions round, in increasing k. So on any CPU this computes
// what a float32 GEMM of the bf16-rounded inputs computes, up to the order
// of the additions across cache blocks.
template <int MR, int NR>
void ukr_bf16(index_t kp, const std::uint32_t* FM_RESTRICT a, const std::uint32_t* FM_RESTRICT b,
              index_t ldb,
              float* FM_RESTRICT c, index_t ldc, index_t m, index_t n, float alpha, float beta) {
  float acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = 0.0f;
  for (index_t q = 0; q < kp; ++q) {
    const std::uint32_t* aq = a + q * MR;
    const std::uint32_t* bq = b + q * ldb;
    float b0[NR], b1[NR];
    for (int j = 0; j < NR; ++j) {
      b0[j] = bf16_to_float(std::uint16_t(bq[j]));
      b1[j] = bf16_to_float(std::uint16_t(bq[j] >> 16));
    }
    for (int i = 0; i < MR; ++i) {
      const float a0 = bf16_to_float(std::uint16_t(aq[i]));
      const float a1 = bf16_to_float(std::uint16_t(aq[i] >> 16));
      for (int j = 0; j < NR; ++j) {
        acc[i][j] += a0 * b0[j];
        acc[i][j] += a1 * b1[j];
      }
    }
  }
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j)
      c[i * ldc + j] =
          beta == 0.0f ? alpha * acc[i][j] : alpha * acc[i][j] + beta * c[i * ldc + j];
}

template <class T, int MR, int NR>
constexpr Ukr<T> ukr_pair() {
  return {&ukr<T, MR, NR, false>, &ukr<T, MR, NR, true>, MR, NR};
}

}  // namespace

const GemmKernel<float> kSgemm = {ukr_pair<float, 4, 8>(), ukr_pair<float, 4, 4>(), 128, 256, 2048, false, nullptr, nullptr, nullptr, "generic"};
const GemmKernel<double> kDgemm = {ukr_pair<double, 4, 4>(), ukr_pair<double, 4, 2>(), 96, 256,
                                   2048, false, nullptr, nullptr, nullptr, "generic"};

const Bf16Kernel kBf16 = {&ukr_bf16<4, 16>, &ukr_bf16<4, 8>, nullptr, nullptr, nullptr, 4, 16, 4, 8, 128, 512,
                          2048, "generic"};

}  // namespace generic
}  // namespace fastmlp
