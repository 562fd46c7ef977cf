// Portable micro-kernels: plain C++ written so that the compiler keeps the
// MR x NR accumulator tile in vector registers at the baseline ISA (SSE2 on
// x86-64, NEON on arm64). The fallback when no wider kernel applies.
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

template <class T, int MR, int NR>
constexpr Ukr<T> ukr_pair() {
  return {&ukr<T, MR, NR, false>, &ukr<T, MR, NR, true>, MR, NR};
}

}  // namespace

const GemmKernel<float> kSgemm = {ukr_pair<float, 4, 8>(), ukr_pair<float, 4, 4>(), 128, 256, 2048, false, nullptr, nullptr, "generic"};
const GemmKernel<double> kDgemm = {ukr_pair<double, 4, 4>(), ukr_pair<double, 4, 2>(), 96, 256,
                                   2048, false, nullptr, nullptr, "generic"};

}  // namespace generic
}  // namespace fastmlp
