// Portable micro-kernels: plain C++ written so that the compiler keeps the
// MR x NR accumulator tile in vector registers at the baseline ISA (SSE2 on
// x86-64, NEON on arm64). The fallback when no wider kernel applies.
#include "common/restrict.h"
#include "gemm/ukr.h"

namespace fastmlp {
namespace generic {
namespace {

template <class T, int MR, int NR>
void ukr(index_t kc, const T* FM_RESTRICT a, const T* FM_RESTRICT b, T* FM_RESTRICT c,
         index_t ldc, index_t m, index_t n, T alpha, T beta) {
  T acc[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) acc[i][j] = T(0);
  for (index_t p = 0; p < kc; ++p) {
    const T* ap = a + p * MR;
    const T* bp = b + p * NR;
    for (int i = 0; i < MR; ++i) {
      const T ai = ap[i];
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

}  // namespace

const GemmKernel<float> kSgemm = {&ukr<float, 4, 8>, 4, 8, 128, 256, 2048, "generic"};
const GemmKernel<double> kDgemm = {&ukr<double, 4, 4>, 4, 4, 96, 256, 2048, "generic"};

}  // namespace generic
}  // namespace fastmlp
