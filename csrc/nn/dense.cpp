#include "nn/dense.h"

#include <algorithm>

#include "common/parallel.h"
#include "gemm/gemm.h"
#include "nn/activations.h"

namespace fastmlp {

template <class T>
void dense_forward(T* z, T* y, const T* x, const T* w, const T* b, index_t n, index_t in,
                   index_t out, Act act) {
  Epilogue<T> ep;
  ep.bias = b;
  ep.act = act;
  ep.y = y;
  ep.ldy = out;
  gemm<T>(Trans::N, Trans::T, n, out, in, T(1), x, in, w, in, T(0), z, out, &ep);
}

template <class T>
void dense_dz_db(T* dz, T* db, const T* dy, const T* z, const T* y, index_t n, index_t out,
                 Act act) {
  // Threads own column strips and walk all rows of their strip, so each db[j]
  // is summed by one thread in row order (deterministic) while dz is written
  // in the same sweep.
  constexpr index_t kStrip = 64;
  const index_t n_strips = (out + kStrip - 1) / kStrip;
  const int nt = std::min<int>(threads_for(double(n) * out * 4.0), int(n_strips));
  (void)nt;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
#endif
  for (index_t s = 0; s < n_strips; ++s) {
    const index_t j0 = s * kStrip, len = std::min(kStrip, out - j0);
    T acc[kStrip];
    for (index_t j = 0; j < len; ++j) acc[j] = T(0);
    for (index_t i = 0; i < n; ++i) {
      const index_t o = i * out + j0;
      act_backward_run(dz + o, dy + o, z + o, y + o, len, act);
      if (db)
        for (index_t j = 0; j < len; ++j) acc[j] += dz[o + j];
    }
    if (db)
      for (index_t j = 0; j < len; ++j) db[j0 + j] = acc[j];
  }
}

template <class T>
void dense_backward(T* dx, T* dw, T* db, T* dz, const T* dy, const T* x, const T* w, const T* z,
                    const T* y, index_t n, index_t in, index_t out, Act act) {
  dense_dz_db(dz, db, dy, z, y, n, out, act);
  // dw (out, in) = dz^T (out, n) . x (n, in)
  gemm<T>(Trans::T, Trans::N, out, in, n, T(1), dz, out, x, in, T(0), dw, in);
  // dx (n, in) = dz (n, out) . w (out, in)
  if (dx) gemm<T>(Trans::N, Trans::N, n, in, out, T(1), dz, out, w, in, T(0), dx, in);
}

#define FM_INSTANTIATE(T)                                                                    \
  template void dense_forward<T>(T*, T*, const T*, const T*, const T*, index_t, index_t,     \
                                 index_t, Act);                                              \
  template void dense_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*,    \
                                  const T*, index_t, index_t, index_t, Act);                 \
  template void dense_dz_db<T>(T*, T*, const T*, const T*, const T*, index_t, index_t, Act);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fastmlp
