// The single GEMM entry point of fastmlp. Every matrix product in the core
// (forward, both backward products, fm.ops.matmul) goes through gemm().
// Python twin: fastmlp.reference.matmul.
//
//   C = alpha * op(A) * op(B) + beta * C        op(A): m x k, op(B): k x n
//
// Row-major; op(X) = X or X^T as the Trans flag says; ld* are row strides in
// elements. beta == 0 never reads C (it may hold NaN). Transposes are absorbed
// when the panels are packed, so a micro-kernel sees one layout only.
//
// Determinism: threads split the m and n loops (output tiles) only, never k.
// Each element of C is accumulated by one thread, over k in a fixed order
// that does not depend on the thread count, so results are bitwise identical
// for any number of threads.
//
// The optional epilogue runs on each output tile right after its last k
// block, while the tile is still in L1: C += bias (per column), then
// y = act(C) if y is given (C keeps the pre-activation z).
#pragma once

#include <string>
#include <vector>

#include "common/types.h"

namespace fastmlp {

template <class T>
struct Epilogue {
  const T* bias = nullptr;  // (n), added to every row of C; nullptr: none
  Act act = Act::identity;  // applied when y != nullptr
  T* y = nullptr;           // (m, n) with row stride ldy; may equal C
  index_t ldy = 0;
};

template <class T>
void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
          const T* b, index_t ldb, T beta, T* c, index_t ldc, const Epilogue<T>* ep = nullptr);

// The straightforward triple loop, kept as the in-C++ reference for the
// blocked path (tests compare the two through fm.ops).
template <class T>
void gemm_naive(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a,
                index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc);

// Name of the micro-kernel in use ("generic", "avx2", "avx512"), for show_config().
const char* gemm_kernel_name();

// Instruction-set paths: those this CPU runs, the best of them, and a switch
// (std::invalid_argument naming FASTMLP_ISA for an unknown or unsupported
// path). init_gemm_dispatch() applies FASTMLP_ISA or the best path; the
// module calls it at import so that a bad FASTMLP_ISA fails there.
std::vector<std::string> supported_gemm_isas();
std::string best_gemm_isa();
void set_gemm_isa(const std::string& isa);
void init_gemm_dispatch();

// Measured FMA throughput of one path: `threads` threads each run
// independent FMA chains for about `seconds`; returns GFLOP/s (all threads).
double fma_peak_gflops(const std::string& isa, bool dbl, int threads, double seconds);

}  // namespace fastmlp
