// Batch normalization over the rows of a row-major (n, f) batch, per feature
// (formulas in batchnorm.h). Python twin: fastmlp.reference.batch_norm_forward
// / batch_norm_backward.
//
// Precision: every column statistic (sums, mean, variance, 1/sqrt(var + eps),
// and the sums of backward) is accumulated in double, for float32 too, and
// each element is normalized in double and rounded once to T. A float32 sum
// over a few thousand rows would lose about log2(n) bits; in double the only
// float32 error left is the final rounding of each result.
//
// Order and threads: a column sum adds the rows in order 0..n-1, as a vector
// of f (or strip-width) partial sums updated row after row, which vectorizes
// over the features and reads x in its storage order. The variance is
// two-pass (mean first, then the mean of squared deviations), which cannot
// cancel catastrophically as E[x^2] - E[x]^2 does. Threads own disjoint
// ranges of features and never split the rows, so each result is the same
// sequence of roundings for any thread count: 1 and 2 threads agree bitwise.
#include "nn/batchnorm.h"

#include <algorithm>
#include <cmath>

#include "common/parallel.h"
#include "common/restrict.h"

namespace fastmlp {

namespace {

// Columns per pass: the double accumulators of one strip (a few arrays of
// kStrip) live on the stack, and the strip of x (n x kStrip) is re-read by
// the later passes while it is still in cache for moderate n.
constexpr index_t kStrip = 256;
// Threads split the features in units of 16 columns (one 64-byte line of
// float32), so no two threads write the same cache line of an output row.
constexpr index_t kUnit = 16;

// Calls body(j0, len) for strips covering [0, f), threads over features only.
template <class Body>
void for_feature_strips(index_t n, index_t f, double work_per_element, const Body& body) {
  const index_t units = (f + kUnit - 1) / kUnit;
  const int nt = int(std::min<index_t>(threads_for(double(n) * double(f) * work_per_element), units));
  auto run = [&](index_t c0, index_t c1) {
    for (index_t j0 = c0; j0 < c1; j0 += kStrip) body(j0, std::min(kStrip, c1 - j0));
  };
#if defined(_OPENMP)
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      const index_t t = thread_id(), nteam = team_size();
      note_team(int(nteam));
      const index_t c0 = std::min(f, units * t / nteam * kUnit);
      const index_t c1 = std::min(f, units * (t + 1) / nteam * kUnit);
      run(c0, c1);
    }
    return;
  }
#endif
  (void)nt;
  run(0, f);
}

// s[j] = sum over rows i (in order) of a[i, j0 + j], j < len; a is (n, f).
template <class T>
FM_ALWAYS_INLINE void column_sums(double* FM_RESTRICT s, const T* a, index_t n, index_t f,
                                  index_t j0, index_t len) {
  for (index_t j = 0; j < len; ++j) s[j] = 0.0;
  for (index_t i = 0; i < n; ++i) {
    const T* FM_RESTRICT ai = a + i * f + j0;
#pragma omp simd
    for (index_t j = 0; j < len; ++j) s[j] += double(ai[j]);
  }
}

}  // namespace

template <class T>
void batchnorm_forward_train(const T* x, index_t n, index_t f, const T* gamma, const T* beta,
                             double eps, T* xhat, T* y, T* mean, T* var_out, T* invstd) {
  if (n <= 0 || f <= 0) return;
  const double inv_n = 1.0 / double(n);
  for_feature_strips(n, f, 6.0, [&](index_t j0, index_t len) {
    double mu[kStrip], q[kStrip], is[kStrip], g[kStrip], b[kStrip];  // (len) each
    column_sums<T>(mu, x, n, f, j0, len);
    for (index_t j = 0; j < len; ++j) {
      mu[j] *= inv_n;
      q[j] = 0.0;
    }
    for (index_t i = 0; i < n; ++i) {
      const T* FM_RESTRICT xi = x + i * f + j0;
#pragma omp simd
      for (index_t j = 0; j < len; ++j) {
        const double d = double(xi[j]) - mu[j];
        q[j] += d * d;
      }
    }
    for (index_t j = 0; j < len; ++j) {
      const double var = q[j] * inv_n;  // biased, as torch normalizes with it
      is[j] = 1.0 / std::sqrt(var + eps);
      g[j] = double(gamma[j0 + j]);
      b[j] = double(beta[j0 + j]);
      mean[j0 + j] = T(mu[j]);
      var_out[j0 + j] = T(var);
      invstd[j0 + j] = T(is[j]);
    }
    for (index_t i = 0; i < n; ++i) {
      const index_t o = i * f + j0;
      const T* xi = x + o;  // y may alias x: each element is read before it is written
      T* yi = y + o;
      T* FM_RESTRICT hi = xhat + o;
#pragma omp simd
      for (index_t j = 0; j < len; ++j) {
        const double h = (double(xi[j]) - mu[j]) * is[j];
        hi[j] = T(h);
        yi[j] = T(g[j] * h + b[j]);  // from the unrounded h: one rounding in y
      }
    }
  });
}

template <class T>
void batchnorm_update_running(T* running_mean, T* running_var, const T* mean, const T* var,
                              index_t n, index_t f, double momentum) {
  // f multiply-adds: never worth a thread.
  const double keep = 1.0 - momentum;
  const double unbias = double(n) / double(n - 1);  // the caller guarantees n >= 2
  for (index_t j = 0; j < f; ++j) {
    running_mean[j] = T(keep * double(running_mean[j]) + momentum * double(mean[j]));
    running_var[j] = T(keep * double(running_var[j]) + momentum * (double(var[j]) * unbias));
  }
}

template <class T>
void batchnorm_forward_eval(const T* x, index_t n, index_t f, const T* gamma, const T* beta,
                            const T* running_mean, const T* running_var, double eps, T* y) {
  if (n <= 0 || f <= 0) return;
  for_feature_strips(n, f, 2.0, [&](index_t j0, index_t len) {
    double mu[kStrip], is[kStrip], g[kStrip], b[kStrip];  // (len) each
    for (index_t j = 0; j < len; ++j) {
      mu[j] = double(running_mean[j0 + j]);
      is[j] = 1.0 / std::sqrt(double(running_var[j0 + j]) + eps);
      g[j] = double(gamma[j0 + j]);
      b[j] = double(beta[j0 + j]);
    }
    for (index_t i = 0; i < n; ++i) {
      const T* xi = x + i * f + j0;  // y may alias x
      T* yi = y + i * f + j0;
#pragma omp simd
      for (index_t j = 0; j < len; ++j) yi[j] = T(g[j] * ((double(xi[j]) - mu[j]) * is[j]) + b[j]);
    }
  });
}

template <class T>
void batchnorm_backward(const T* dy, const T* xhat, const T* gamma, const T* invstd, index_t n,
                        index_t f, T* dx, T* dgamma, T* dbeta) {
  if (f <= 0) return;
  if (n <= 0) {
    std::fill(dgamma, dgamma + f, T(0));
    std::fill(dbeta, dbeta + f, T(0));
    return;
  }
  const double inv_n = 1.0 / double(n);
  for_feature_strips(n, f, 5.0, [&](index_t j0, index_t len) {
    double sdy[kStrip], sdyh[kStrip], a[kStrip];  // (len) each
    for (index_t j = 0; j < len; ++j) sdy[j] = sdyh[j] = 0.0;
    for (index_t i = 0; i < n; ++i) {
      const T* FM_RESTRICT di = dy + i * f + j0;
      const T* FM_RESTRICT hi = xhat + i * f + j0;
#pragma omp simd
      for (index_t j = 0; j < len; ++j) {
        const double d = double(di[j]);
        sdy[j] += d;
        sdyh[j] += d * double(hi[j]);
      }
    }
    for (index_t j = 0; j < len; ++j) {
      dbeta[j0 + j] = T(sdy[j]);
      dgamma[j0 + j] = T(sdyh[j]);
      a[j] = double(gamma[j0 + j]) * double(invstd[j0 + j]);
      sdy[j] *= inv_n;   // now mean_rows(dy)
      sdyh[j] *= inv_n;  // now mean_rows(dy xhat)
    }
    for (index_t i = 0; i < n; ++i) {
      const T* di = dy + i * f + j0;  // dx may alias dy
      T* dxi = dx + i * f + j0;
      const T* FM_RESTRICT hi = xhat + i * f + j0;
#pragma omp simd
      for (index_t j = 0; j < len; ++j)
        dxi[j] = T(a[j] * ((double(di[j]) - sdy[j]) - double(hi[j]) * sdyh[j]));
    }
  });
}

// Data-parallel training (synchronized batch statistics): the same
// statistics, taken over a global batch whose rows are spread over
// processes. Each rank's rows are cut into pieces (bounds[0] = 0 < ... <
// bounds[pieces] = n); the functions below give per-piece column sums, which
// the caller combines across processes, and normalize with the combined
// statistics. Per piece the rows are added in order, as above.
template <class T>
void batchnorm_piece_sums(const T* x, const index_t* bounds, index_t pieces, index_t f,
                          const double* center, double* out) {
  const index_t n = bounds[pieces];
  for_feature_strips(n, f, 2.0, [&](index_t j0, index_t len) {
    for (index_t p = 0; p < pieces; ++p) {
      double* FM_RESTRICT s = out + p * f + j0;
      for (index_t j = 0; j < len; ++j) s[j] = 0.0;
      for (index_t i = bounds[p]; i < bounds[p + 1]; ++i) {
        const T* FM_RESTRICT xi = x + i * f + j0;
        if (center) {
          const double* FM_RESTRICT c = center + j0;
#pragma omp simd
          for (index_t j = 0; j < len; ++j) {
            const double d = double(xi[j]) - c[j];
            s[j] += d * d;
          }
        } else {
#pragma omp simd
          for (index_t j = 0; j < len; ++j) s[j] += double(xi[j]);
        }
      }
    }
  });
}

template <class T>
void batchnorm_normalize(const T* x, index_t n, index_t f, const T* gamma, const T* beta,
                         const double* mean, const double* var, double eps, T* xhat, T* y,
                         T* mean_out, T* var_out, T* invstd) {
  for_feature_strips(n, f, 3.0, [&](index_t j0, index_t len) {
    double is[kStrip], g[kStrip], b[kStrip];
    for (index_t j = 0; j < len; ++j) {
      is[j] = 1.0 / std::sqrt(var[j0 + j] + eps);
      g[j] = double(gamma[j0 + j]);
      b[j] = double(beta[j0 + j]);
      mean_out[j0 + j] = T(mean[j0 + j]);
      var_out[j0 + j] = T(var[j0 + j]);
      invstd[j0 + j] = T(is[j]);
    }
    const double* FM_RESTRICT mu = mean + j0;
    for (index_t i = 0; i < n; ++i) {
      const index_t o = i * f + j0;
      const T* xi = x + o;
      T* yi = y + o;
      T* FM_RESTRICT hi = xhat + o;
#pragma omp simd
      for (index_t j = 0; j < len; ++j) {
        const double h = (double(xi[j]) - mu[j]) * is[j];
        hi[j] = T(h);
        yi[j] = T(g[j] * h + b[j]);
      }
    }
  });
}

template <class T>
void batchnorm_backward_piece_sums(const T* dy, const T* xhat, const index_t* bounds,
                                   index_t pieces, index_t f, double* out) {
  const index_t n = bounds[pieces];
  for_feature_strips(n, f, 3.0, [&](index_t j0, index_t len) {
    for (index_t p = 0; p < pieces; ++p) {
      double* FM_RESTRICT sdy = out + p * 2 * f + j0;
      double* FM_RESTRICT sdyh = out + p * 2 * f + f + j0;
      for (index_t j = 0; j < len; ++j) sdy[j] = sdyh[j] = 0.0;
      for (index_t i = bounds[p]; i < bounds[p + 1]; ++i) {
        const T* FM_RESTRICT di = dy + i * f + j0;
        const T* FM_RESTRICT hi = xhat + i * f + j0;
#pragma omp simd
        for (index_t j = 0; j < len; ++j) {
          const double d = double(di[j]);
          sdy[j] += d;
          sdyh[j] += d * double(hi[j]);
        }
      }
    }
  });
}

template <class T>
void batchnorm_backward_apply(const T* dy, const T* xhat, const T* gamma, const T* invstd,
                              index_t n, index_t f, const double* sums, double rows, T* dx) {
  const double inv_rows = 1.0 / rows;
  for_feature_strips(n, f, 3.0, [&](index_t j0, index_t len) {
    double a[kStrip], mdy[kStrip], mdyh[kStrip];
    for (index_t j = 0; j < len; ++j) {
      a[j] = double(gamma[j0 + j]) * double(invstd[j0 + j]);
      mdy[j] = sums[j0 + j] * inv_rows;
      mdyh[j] = sums[f + j0 + j] * inv_rows;
    }
    for (index_t i = 0; i < n; ++i) {
      const T* di = dy + i * f + j0;  // dx may alias dy
      T* dxi = dx + i * f + j0;
      const T* FM_RESTRICT hi = xhat + i * f + j0;
#pragma omp simd
      for (index_t j = 0; j < len; ++j)
        dxi[j] = T(a[j] * ((double(di[j]) - mdy[j]) - double(hi[j]) * mdyh[j]));
    }
  });
}

#define FM_BN_INSTANTIATE(T)                                                                      \
  template void batchnorm_forward_train<T>(const T*, index_t, index_t, const T*, const T*, double, \
                                           T*, T*, T*, T*, T*);                                    \
  template void batchnorm_update_running<T>(T*, T*, const T*, const T*, index_t, index_t, double); \
  template void batchnorm_forward_eval<T>(const T*, index_t, index_t, const T*, const T*,         \
                                          const T*, const T*, double, T*);                         \
  template void batchnorm_backward<T>(const T*, const T*, const T*, const T*, index_t, index_t, T*, \
                                      T*, T*);                                                    \
  template void batchnorm_piece_sums<T>(const T*, const index_t*, index_t, index_t, const double*, \
                                        double*);                                                 \
  template void batchnorm_normalize<T>(const T*, index_t, index_t, const T*, const T*,            \
                                       const double*, const double*, double, T*, T*, T*, T*, T*); \
  template void batchnorm_backward_piece_sums<T>(const T*, const T*, const index_t*, index_t,     \
                                                 index_t, double*);                               \
  template void batchnorm_backward_apply<T>(const T*, const T*, const T*, const T*, index_t,      \
                                            index_t, const double*, double, T*);
FM_BN_INSTANTIATE(float)
FM_BN_INSTANTIATE(double)
#undef FM_BN_INSTANTIATE

}  // namespace fastmlp
