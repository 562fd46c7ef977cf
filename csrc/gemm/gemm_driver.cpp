// Cache-blocked GEMM driver: the five loops around the micro-kernel.
//
//   for jc over n in steps of NC        B panel (kc x nc) packed once, shared (L3)
//     for pc over k in steps of KC      the only loop that accumulates into C
//       for ic over m in steps of MC    A block (mc x kc) packed once, shared (L2)
//         for (jr, ir) micro-tiles      split over threads; B sliver kc x NR in L1
//           micro-kernel MR x NR
//
// Packing and the micro-tile loop are work-shared with `omp for`; their
// implicit barriers order pack -> compute -> next pack. Threads never split pc
// or the k loop inside a micro-kernel, which keeps results independent of the
// thread count. Pack buffers are per calling thread (thread_local), so two
// Python threads that call into the core with the GIL released never share
// one, and a step after the first allocates nothing.
#include <algorithm>

#include "common/aligned.h"
#include "common/parallel.h"
#include "common/restrict.h"
#include "gemm/gemm.h"
#include "gemm/ukr.h"
#include "nn/activations.h"

namespace fastmlp {
namespace {

// One MR-row sliver of op(A) (rows i0.., k columns p0..p0+kc) into dst[p*MR + i].
template <class T>
void pack_a_sliver(T* FM_RESTRICT dst, Trans ta, const T* a, index_t lda, index_t i0, index_t mr,
                   index_t p0, index_t kc, int MR) {
  if (ta == Trans::N) {  // op(A)(i, p) = a[i*lda + p]: read rows, scatter by MR
    for (index_t i = 0; i < mr; ++i) {
      const T* src = a + (i0 + i) * lda + p0;
      for (index_t p = 0; p < kc; ++p) dst[p * MR + i] = src[p];
    }
  } else {  // op(A)(i, p) = a[p*lda + i]: contiguous in i
    for (index_t p = 0; p < kc; ++p) {
      const T* src = a + (p0 + p) * lda + i0;
      for (index_t i = 0; i < mr; ++i) dst[p * MR + i] = src[i];
    }
  }
  if (mr < MR)
    for (index_t p = 0; p < kc; ++p)
      for (index_t i = mr; i < MR; ++i) dst[p * MR + i] = T(0);
}

// One NR-column sliver of op(B) (k rows p0..p0+kc, columns j0..) into dst[p*NR + j].
template <class T>
void pack_b_sliver(T* FM_RESTRICT dst, Trans tb, const T* b, index_t ldb, index_t p0, index_t kc,
                   index_t j0, index_t nr, int NR) {
  if (tb == Trans::N) {  // op(B)(p, j) = b[p*ldb + j]: contiguous in j
    for (index_t p = 0; p < kc; ++p) {
      const T* src = b + (p0 + p) * ldb + j0;
      for (index_t j = 0; j < nr; ++j) dst[p * NR + j] = src[j];
    }
  } else {  // op(B)(p, j) = b[j*ldb + p]
    for (index_t j = 0; j < nr; ++j) {
      const T* src = b + (j0 + j) * ldb + p0;
      for (index_t p = 0; p < kc; ++p) dst[p * NR + j] = src[p];
    }
  }
  if (nr < NR)
    for (index_t p = 0; p < kc; ++p)
      for (index_t j = nr; j < NR; ++j) dst[p * NR + j] = T(0);
}

template <class T>
void apply_epilogue(const Epilogue<T>& ep, T* c, index_t ldc, index_t i0, index_t rows,
                    index_t j0, index_t cols) {
  for (index_t i = i0; i < i0 + rows; ++i) {
    T* ci = c + i * ldc + j0;
    if (ep.bias) {
      const T* bj = ep.bias + j0;
      for (index_t j = 0; j < cols; ++j) ci[j] += bj[j];
    }
    if (ep.y) act_forward_run(ep.y + i * ep.ldy + j0, ci, cols, ep.act);
  }
}

template <class T>
void scale_c(T beta, T* c, index_t ldc, index_t m, index_t n) {
  for (index_t i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0))
      for (index_t j = 0; j < n; ++j) ci[j] = T(0);
    else
      for (index_t j = 0; j < n; ++j) ci[j] *= beta;
  }
}

template <class T>
struct PackBuffers {
  AlignedBuffer<T> a, b;
};

template <class T>
PackBuffers<T>& pack_buffers() {
  thread_local PackBuffers<T> bufs;
  return bufs;
}

}  // namespace

template <class T>
void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
          const T* b, index_t ldb, T beta, T* c, index_t ldc, const Epilogue<T>* ep) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == T(0)) {
    scale_c(beta, c, ldc, m, n);
    if (ep) apply_epilogue(*ep, c, ldc, 0, m, 0, n);
    return;
  }
  const GemmKernel<T>& K = active_gemm_kernel<T>();
  const int MR = K.mr, NR = K.nr;
  const index_t MC = K.mc, KC = K.kc, NC = K.nc;

  const index_t nc_max = std::min(NC, (n + NR - 1) / NR * NR);
  const index_t kc_max = std::min(KC, k);
  const index_t mc_max = std::min(MC, (m + MR - 1) / MR * MR);
  PackBuffers<T>& bufs = pack_buffers<T>();
  bufs.a.reserve(mc_max * kc_max);
  bufs.b.reserve(nc_max * kc_max);
  T* const apack = bufs.a.data();
  T* const bpack = bufs.b.data();

  const int nt = threads_for(double(m) * double(n) * double(k));
  (void)nt;
#if defined(_OPENMP)
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
  {
    for (index_t jc = 0; jc < n; jc += NC) {
      const index_t nc = std::min(NC, n - jc);
      const index_t n_jr = (nc + NR - 1) / NR;
      for (index_t pc = 0; pc < k; pc += KC) {
        const index_t kc = std::min(KC, k - pc);
        const T beta_blk = pc == 0 ? beta : T(1);
        const bool last_k = pc + kc == k;

#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (index_t jr = 0; jr < n_jr; ++jr) {
          const index_t j0 = jr * NR;
          pack_b_sliver(bpack + jr * NR * kc, tb, b, ldb, pc, kc, jc + j0,
                        std::min<index_t>(NR, nc - j0), NR);
        }

        for (index_t ic = 0; ic < m; ic += MC) {
          const index_t mc = std::min(MC, m - ic);
          const index_t n_ir = (mc + MR - 1) / MR;
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
          for (index_t ir = 0; ir < n_ir; ++ir) {
            const index_t i0 = ir * MR;
            pack_a_sliver(apack + ir * MR * kc, ta, a, lda, ic + i0, std::min<index_t>(MR, mc - i0),
                          pc, kc, MR);
          }

          // ir runs fastest, so consecutive tiles of one thread reuse the B sliver in L1.
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
          for (index_t t = 0; t < n_jr * n_ir; ++t) {
            const index_t jr = t / n_ir, ir = t % n_ir;
            const index_t i0 = ic + ir * MR, j0 = jc + jr * NR;
            const index_t mr = std::min<index_t>(MR, m - i0);
            const index_t nr = std::min<index_t>(NR, n - j0);
            K.ukr(kc, apack + ir * MR * kc, bpack + jr * NR * kc, c + i0 * ldc + j0, ldc, mr, nr,
                  alpha, beta_blk);
            if (last_k && ep) apply_epilogue(*ep, c, ldc, i0, mr, j0, nr);
          }
        }
      }
    }
  }
}

template <class T>
void gemm_naive(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a,
                index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      T s = T(0);
      for (index_t p = 0; p < k; ++p) {
        T av = ta == Trans::N ? a[i * lda + p] : a[p * lda + i];
        T bv = tb == Trans::N ? b[p * ldb + j] : b[j * ldb + p];
        s += av * bv;
      }
      c[i * ldc + j] = beta == T(0) ? alpha * s : alpha * s + beta * c[i * ldc + j];
    }
}

template void gemm<float>(Trans, Trans, index_t, index_t, index_t, float, const float*, index_t,
                          const float*, index_t, float, float*, index_t, const Epilogue<float>*);
template void gemm<double>(Trans, Trans, index_t, index_t, index_t, double, const double*, index_t,
                           const double*, index_t, double, double*, index_t,
                           const Epilogue<double>*);
template void gemm_naive<float>(Trans, Trans, index_t, index_t, index_t, float, const float*,
                                index_t, const float*, index_t, float, float*, index_t);
template void gemm_naive<double>(Trans, Trans, index_t, index_t, index_t, double, const double*,
                                 index_t, const double*, index_t, double, double*, index_t);

}  // namespace fastmlp
