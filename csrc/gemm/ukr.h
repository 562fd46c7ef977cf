// Micro-kernel contract and the blocking table of each kernel.
//
// A micro-kernel computes one MR x NR tile of C from packed panels:
//   a: kc x MR, stored k-major (a[p*MR + i] = op(A)(i, p)), zero-padded rows
//   b: kc x NR, stored k-major (b[p*NR + j] = op(B)(p, j)), zero-padded cols
//   C[i][j] = alpha * sum_p a[p][i] * b[p][j] + beta * C[i][j]
// for i < m <= MR and j < n <= NR (edge tiles are masked on write-back);
// beta == 0 never reads C. The sum over p runs in increasing p.
#pragma once

#include "common/types.h"

namespace fastmlp {

template <class T>
using UkrFn = void (*)(index_t kc, const T* a, const T* b, T* c, index_t ldc, index_t m,
                       index_t n, T alpha, T beta);

template <class T>
struct GemmKernel {
  UkrFn<T> ukr;
  int mr, nr;              // register tile
  index_t mc, kc, nc;      // cache blocks: A block mc x kc in L2, B panel kc x nc in L3
  const char* name;
};

// The kernel chosen for this machine (see dispatch.cpp).
template <class T>
const GemmKernel<T>& active_gemm_kernel();

namespace generic {
extern const GemmKernel<float> kSgemm;
extern const GemmKernel<double> kDgemm;
}  // namespace generic

}  // namespace fastmlp
