#include "nn/dense.h"

#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "common/parallel.h"
#include "common/restrict.h"
#include "gemm/gemm.h"
#include "gemm/ukr.h"
#include "nn/activations.h"

namespace fastmlp {

namespace {

// C = op(A) op(B) (alpha 1, beta 0) in the layer's GEMM precision.
template <class T>
void dense_gemm(GemmPrecision prec, Trans ta, Trans tb, index_t m, index_t n, index_t k,
                const T* a, index_t lda, const T* b, index_t ldb, T* c, index_t ldc,
                const Epilogue<T>* ep = nullptr, const Bf16Panel* panel = nullptr) {
  if (prec == GemmPrecision::native) {
    gemm<T>(ta, tb, m, n, k, T(1), a, lda, b, ldb, T(0), c, ldc, ep);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if (panel)
      gemm_bf16_panel(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, *panel, 0.0f, c, ldc, ep);
    else
      gemm_bf16(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc, ep);
  } else {
    throw std::invalid_argument("dtype: bf16 GEMM operands need a float32 network, not float64");
  }
}

}  // namespace

template <class T>
void dense_forward(T* z, T* y, const T* x, const T* w, const T* b, index_t n, index_t in,
                   index_t out, Act act, GemmPrecision prec, const Bf16Panel* wt_panel,
                   std::uint32_t* y_panel) {
  Epilogue<T> ep;
  ep.bias = b;
  ep.act = act;
  ep.y = y;
  ep.ldy = out;
  if (y_panel && std::is_same_v<T, float> && prec == GemmPrecision::bf16) {
    ep.y_panel = y_panel;
    ep.y_panel_nr = bf16_panel_nr();
    ep.y_panel_stride = index_t(ep.y_panel_nr) * ((n + 1) / 2);
  }
  dense_gemm<T>(prec, Trans::N, Trans::T, n, out, in, x, in, w, in, z, out, &ep, wt_panel);
}

namespace {

// One column strip [j0, j0 + len) of dz = dy * act'(z) and its column sums,
// rows in increasing order. The activation is a template argument so that the
// inner loop is one straight vectorizable line per activation.
template <class T, Act A>
void dz_db_strip(T* dz, T* db, const T* dy, const T* z, const T* y, index_t n, index_t out,
                 index_t j0, index_t len) {
  constexpr index_t kStrip = 64;
  T acc[kStrip];
  for (index_t j = 0; j < len; ++j) acc[j] = T(0);
  const GemmKernel<T>& K = active_gemm_kernel<T>();
  for (index_t i = 0; i < n; ++i) {
    const index_t o = i * out + j0;
    T* FM_RESTRICT dzi = dz + o;  // may equal dy: each element is read, then written
    const T* dyi = dy + o;
    const T* FM_RESTRICT zi = z + o;
    const T* FM_RESTRICT yi = y + o;
    if constexpr (A == Act::identity) {
      if (dzi != dyi)
        for (index_t j = 0; j < len; ++j) dzi[j] = dyi[j];
    } else if constexpr (A == Act::relu) {
#pragma omp simd
      for (index_t j = 0; j < len; ++j) {
        const T d = dyi[j];  // read unconditionally, so the select vectorizes
        dzi[j] = zi[j] > T(0) ? d : T(0);
      }
    } else if constexpr (A == Act::tanh || A == Act::sigmoid) {
      // From z, not y: 1 - y^2 and y(1 - y) are 0 once y rounds to +-1
      // (nn/activations.h); an exp per element, at the ISA's width.
      act_backward_fast(K, dzi, dyi, zi, yi, len, A);
    } else {
      act_backward_run(dzi, dyi, zi, yi, len, A);
    }
    if (db) {
#pragma omp simd
      for (index_t j = 0; j < len; ++j) acc[j] += dzi[j];
    }
  }
  if (db)
    for (index_t j = 0; j < len; ++j) db[j0 + j] = acc[j];
}

template <class T, Act A>
void dz_db_all(T* dz, T* db, const T* dy, const T* z, const T* y, index_t n, index_t out) {
  // Threads own column strips and walk all rows of their strip, so each db[j]
  // is summed by one thread in row order (deterministic) while dz is written
  // in the same sweep.
  constexpr index_t kStrip = 64;
  const index_t n_strips = (out + kStrip - 1) / kStrip;
  const int nt = std::min<int>(threads_for(double(n) * out * 4.0), int(n_strips));
  parallel_for(n_strips, nt, [&](index_t s) {
    dz_db_strip<T, A>(dz, db, dy, z, y, n, out, s * kStrip, std::min(kStrip, out - s * kStrip));
  });
}

}  // namespace

template <class T>
void dense_dz_db(T* dz, T* db, const T* dy, const T* z, const T* y, index_t n, index_t out,
                 Act act) {
  switch (act) {
    case Act::identity: return dz_db_all<T, Act::identity>(dz, db, dy, z, y, n, out);
    case Act::sigmoid: return dz_db_all<T, Act::sigmoid>(dz, db, dy, z, y, n, out);
    case Act::tanh: return dz_db_all<T, Act::tanh>(dz, db, dy, z, y, n, out);
    case Act::relu: return dz_db_all<T, Act::relu>(dz, db, dy, z, y, n, out);
    case Act::leaky_relu: return dz_db_all<T, Act::leaky_relu>(dz, db, dy, z, y, n, out);
    case Act::elu: return dz_db_all<T, Act::elu>(dz, db, dy, z, y, n, out);
    case Act::gelu: return dz_db_all<T, Act::gelu>(dz, db, dy, z, y, n, out);
    case Act::softplus: return dz_db_all<T, Act::softplus>(dz, db, dy, z, y, n, out);
  }
}

template <class T>
void dense_backward(T* dx, T* dw, T* db, T* dz, const T* dy, const T* x, const T* w, const T* z,
                    const T* y, index_t n, index_t in, index_t out, Act act,
                    GemmPrecision prec, const Bf16Panel* w_panel, const Bf16Panel* x_panel) {
  dense_dz_db(dz, db, dy, z, y, n, out, act);
  // dw (out, in) = dz^T (out, n) . x (n, in)
  // dW is written once and next read by the optimizer pass, after the other
  // layers' products: it may bypass the caches (gemm.h Epilogue::stream).
  Epilogue<T> written_once;
  written_once.stream = true;
  dense_gemm<T>(prec, Trans::T, Trans::N, out, in, n, dz, out, x, in, dw, in, &written_once,
                x_panel);
  // dx (n, in) = dz (n, out) . w (out, in)
  if (dx)
    dense_gemm<T>(prec, Trans::N, Trans::N, n, in, out, dz, out, w, in, dx, in, nullptr, w_panel);
}

template <class T>
void dense_backward_dx(T* dx, const T* dz, const T* w, index_t n, index_t in, index_t out,
                       GemmPrecision prec, const Bf16Panel* w_panel) {
  dense_gemm<T>(prec, Trans::N, Trans::N, n, in, out, dz, out, w, in, dx, in, nullptr, w_panel);
}

#define FM_INSTANTIATE(T)                                                                    \
  template void dense_forward<T>(T*, T*, const T*, const T*, const T*, index_t, index_t,     \
                                 index_t, Act, GemmPrecision, const Bf16Panel*,              \
                                 std::uint32_t*);                                            \
  template void dense_backward<T>(T*, T*, T*, T*, const T*, const T*, const T*, const T*,    \
                                  const T*, index_t, index_t, index_t, Act, GemmPrecision,   \
                                  const Bf16Panel*, const Bf16Panel*);                       \
  template void dense_dz_db<T>(T*, T*, const T*, const T*, const T*, index_t, index_t, Act);    \
  template void dense_backward_dx<T>(T*, const T*, const T*, index_t, index_t, index_t,         \
                                     GemmPrecision, const Bf16Panel*);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fastmlp
