#include "nn/losses.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "common/parallel.h"
#include "nn/activations.h"
#include "nn/dd.h"
#include "nn/td.h"

namespace fastmlp {

// max_j z[j] for k >= 1. The omp simd max reduction lets the compiler use
// vector max instructions (a plain ?: loop stays scalar without
// -ffast-math, one dependent compare per element); the order of a max does
// not change its value for finite inputs.
//
// Short rows (k < kSimdMaxRow, e.g. 10 classes) take four independent scalar
// chains instead: the simd reduction's remainder handling for them assembles
// the vector through the stack, a store-forwarding stall that cost 256x10
// cross-entropy ~10% of its time (perf), twice per row.
constexpr index_t kSimdMaxRow = 32;

template <class T>
FM_ALWAYS_INLINE T row_max(const T* z, index_t k) {
  T mx = z[0];
  if (k < kSimdMaxRow) {
    T m1 = mx, m2 = mx, m3 = mx;
    index_t j = 1;
    for (; j + 3 < k; j += 4) {
      mx = z[j] > mx ? z[j] : mx;
      m1 = z[j + 1] > m1 ? z[j + 1] : m1;
      m2 = z[j + 2] > m2 ? z[j + 2] : m2;
      m3 = z[j + 3] > m3 ? z[j + 3] : m3;
    }
    for (; j < k; ++j) mx = z[j] > mx ? z[j] : mx;
    mx = m1 > mx ? m1 : mx;
    m2 = m3 > m2 ? m3 : m2;
    return m2 > mx ? m2 : mx;
  }
#pragma omp simd reduction(max : mx)
  for (index_t j = 1; j < k; ++j) mx = z[j] > mx ? z[j] : mx;
  return mx;
}

// log1p(r) for the softmax sum's tail r >= 0. glibc's log1pf is several
// times slower than its log, so float takes log(1 + r) in double (1 + r is
// exact there for r >= 2^-10, as r has 24 significant bits) and, below,
// the series r - r^2/2 + r^3/3 (truncation < r^4/4 < 2^-42 relative).
template <class T>
FM_ALWAYS_INLINE T log1p_softmax(T r) {
  if constexpr (std::is_same_v<T, float>) {
    if (r < 0x1p-10f) return r * (1.0f - r * (0.5f - r * (1.0f / 3.0f)));
    return float(std::log(1.0 + double(r)));
  } else {
    return std::log1p(r);
  }
}

// The accurate pieces of a softmax row (loss_output, loss_rows). Rounding
// the shifted logit d = fl(z_j - max) costs e^d a relative |d| 2^-53
// (2^-24): 16 ulp at d = -33, 63 ulp seen at d = -120 in float64, as the
// difference's error becomes an error of the exponent. So e_j is
// e^(d + lo) with lo = (z_j - max) - d exact (TwoSum) and folded into exp's
// reduced argument (exp_neg_lo). Rows with an infinite logit keep their
// limits: a d of -inf is clamped by exp_neg_lo, which then drops the (NaN)
// tail, and a NaN d gives NaN as before.
template <class T>
FM_ALWAYS_INLINE T exp_shifted(T zj, T mx) {
  const T d = zj - mx;
  const T bv = d - zj;
  const T lo = (zj - (d - bv)) - (mx + bv);
  return exp_neg_lo(d, lo);
}

// Error-free a + b = s + err (TwoSum, any order of magnitudes).
template <class T>
FM_ALWAYS_INLINE T two_sum_err(T a, T b, T s) {
  const T bv = s - a;
  return (a - (s - bv)) + (b - bv);
}

// r = sum of the row's e_j but the leading one's 1, the tail of s = 1 + r:
// each class tied with the max counts as 1 (its e^0), less the one that is
// the 1 of s, plus the others' terms, with no index search. In double for
// both dtypes. A plain sum would carry up to k ulp of r (typically sqrt(k)),
// which passes into every p_j = e_j / (1 + r) and into log1p(r): float32
// sums in double, float64 in compensated (TwoSum) accumulators, eight
// interleaved lanes on long rows so that the loop vectorizes (no
// reassociation, one dependent add per lane) and two chains on short ones
// (latency-bound like the plain sum they replace, the error terms off the
// chains).
template <class T>
FM_ALWAYS_INLINE double softmax_tail(const T* e, const T* zi, T mx, index_t k) {
  double hi = 0.0, lo = 0.0;
  double ties = 0.0;  // counted in double, per lane: an int64 count does not vectorize on SSE2
  index_t j = 0;
  if (k >= kSimdMaxRow) {
    constexpr int L = 8;
    double sl[L] = {}, cl[L] = {}, tl[L] = {};
    for (; j + L <= k; j += L) {
      // The lanes are the vector (simd over l): GCC's loop vectorizer
      // refuses the j loop, whose running sums feed TwoSum's error terms.
#pragma omp simd
      for (int l = 0; l < L; ++l) {
        // Masks as 0/1 factors, no branch (a bool here stops the vectorizer).
        const double top = zi[j + l] == mx ? 1.0 : 0.0;
        const double x = double(e[j + l]) * (1.0 - top);
        tl[l] += top;
        if constexpr (std::is_same_v<T, float>) {
          sl[l] += x;  // float terms: double's k 2^-53 is far below float's ulp
        } else {
          const double t = sl[l] + x;
          cl[l] += two_sum_err(sl[l], x, t);
          sl[l] = t;
        }
      }
    }
    for (int l = 0; l < L; ++l) {
      const double t = hi + sl[l];
      lo += two_sum_err(hi, sl[l], t) + cl[l];
      hi = t;
      ties += tl[l];
    }
  }
  // The rest (all of a short row) in two chains, even and odd j, which
  // halves the dependent adds of the plain sum this replaces.
  double hi2 = 0.0, lo2 = 0.0;
  index_t more_ties = 0;  // an integer here: a double count would be a third chain
  auto add = [&](double& h, double& l, index_t jj) {
    const bool top = zi[jj] == mx;
    const double x = top ? 0.0 : double(e[jj]);
    more_ties += top;
    if constexpr (std::is_same_v<T, float>) {
      h += x;
    } else {
      const double t = h + x;
      l += two_sum_err(h, x, t);
      h = t;
    }
  };
  for (; j + 1 < k; j += 2) {
    add(hi, lo, j);
    add(hi2, lo2, j + 1);
  }
  if (j < k) add(hi, lo, j);
  ties += double(more_ties);
  const double x = ties > 0.0 ? ties - 1.0 : 0.0;
  if constexpr (std::is_same_v<T, float>) {
    return (hi + hi2) + x;
  } else {
    double t = hi + hi2;
    lo += two_sum_err(hi, hi2, t) + lo2;
    const double t2 = t + x;
    lo += two_sum_err(t, x, t2);
    return t2 + lo;
  }
}

template <class T>
void loss_output(Loss loss, T* y, const T* z, index_t n, index_t k, T* tail) {
  if (loss == Loss::mse) return;
  const int nt = threads_for(double(n) * k * 16.0);
  parallel_for(n, nt, [&](index_t i) {
    const T* zi = z + i * k;
    T* yi = y + i * k;
    if (loss == Loss::binary_cross_entropy) {
      for (index_t j = 0; j < k; ++j) yi[j] = sigmoid_scalar(zi[j]);
    } else if (loss == Loss::poisson) {
      // The predicted mean; inf past the dtype's range (see losses.h).
      for (index_t j = 0; j < k; ++j) yi[j] = std::exp(zi[j]);
    } else {
      // s = 1 + r, where the 1 is the leading class's e^0 and r the sum
      // over the others (softmax_tail). The loss takes log s as log1p(r),
      // which keeps the digits that log(s) would lose when r << 1 (a
      // confident prediction, loss ~ r), and p_c - 1 of a dominant class as
      // -r / (1 + r): tail[i] = r is what loss_forward_backward reads.
      const T mx = row_max(zi, k);
      for (index_t j = 0; j < k; ++j) yi[j] = exp_shifted(zi[j], mx);
      const double r = softmax_tail(yi, zi, mx, k);
      tail[i] = T(r);
      // p_j = e_j * (1 / s): two roundings where e_j / s has one, but a
      // division per element costs short rows ~10%, and the bound holds
      // (measured worst 2.4 ulp, float64, tests/test_extremes.py).
      const T inv = T(1.0 / (1.0 + r));
      for (index_t j = 0; j < k; ++j) yi[j] *= inv;
    }
  });
}

namespace {

#if defined(__GNUC__) || defined(__clang__)
#define FM_NOINLINE __attribute__((noinline))
#else
#define FM_NOINLINE
#endif

// Whether the residual a - q (or q - a) of a loss gradient, computed from a
// rounded q ~ e^z (sigmoid, softmax times the target sum, or exp) and an exact
// target term a, may have lost digits to cancellation: q within (a/2, 4a).
// Outside it the difference is at least half of q's size, so q's few ulp of
// error stay a few ulp of the result; inside, the callers recompute the
// residual (in double-double, nn/dd.h; float32 first in double, below).
// a = 0 (targets 0 or 1 where nothing cancels, counts of 0) never flags.
template <class T>
FM_ALWAYS_INLINE bool may_cancel(T q, T a) {
  return a > T(0) && q > T(0.5) * a && q < T(4) * a;
}

// float32 residuals are recomputed in double first (a few ulp of 2^-53 of
// their terms, exp included) and kept when they are at least kTightF32 of
// their larger term: then double's error is below 2^-25 of the residual, far
// within float's 8 ulp. Smaller ones, which exist (tests/test_extremes.py
// HARD_F32: double alone misses some by 10^7 ulp), go to double-double. This
// keeps the double-double branch to inputs within ~2^-26 of a zero, where it
// is rare, instead of every soft target near its optimum.
constexpr double kTightF32 = 0x1p-26;

// float64 residuals from double-double carry an error of up to ~2^-104 of
// their cancelling term (measured: ~300 ulp of a residual 2^-60 of it, 10^4
// ulp of one 2^-73 of it). Below kTightF64 of the term that could be more
// than 2^-56 of the residual (1/16 ulp), so those few, inputs within a few
// dozen ulp of a zero, are recomputed in triple-double (nn/td.h, ~2^-150),
// out of line.
constexpr double kTightF64 = 0x1p-48;

template <class T, class U, class Flag>
FM_NOINLINE void cross_entropy_soft_td(T* di, const T* zi, U u, index_t k, T mx, T g,
                                       Flag flagged);

// Cross-entropy with dense targets, the rows where p_j t_sum - u_j may
// cancel: p_j t_sum - u_j = (e_j t_sum - u_j s) / s with e_j = e^(z_j - max z)
// and s = sum_j e_j, the numerator in double-double, for the classes that
// flagged(j) names (the others keep their result). A flagged dominant target c
// (u_c > t_sum / 2, e.g. 1 - eps of a smoothed label) takes the complement,
// as the class-id path does: the numerators sum to t_sum s - s t_sum = 0, so
// N_c = -sum_{j != c} N_j, whose rounding is relative to the other classes'
// terms (~eps), not to u_c ~ 1.
template <class T, class U, class Flag>
FM_NOINLINE void cross_entropy_soft_dd(T* di, const T* zi, U u, index_t k, T mx, T g,
                                       Flag flagged) {
  auto e = [&](index_t j) {
    const dd::DD x = dd::two_sum(double(zi[j]), -double(mx));  // exact z_j - max
    return dd::exp_neg(x.hi, x.lo);
  };
  dd::DD s{0.0, 0.0}, ts{0.0, 0.0};
  index_t c = 0;
  for (index_t j = 0; j < k; ++j) {
    s = dd::add(s, e(j));
    ts = dd::add(ts, {double(u(j)), 0.0});
    c = u(j) > u(c) ? j : c;
  }
  const bool complement = double(u(c)) > 0.5 * ts.hi && flagged(c);
  dd::DD others{0.0, 0.0};  // sum_{j != c} N_j, when the complement is taken
  bool tight = false;       // float64: some result too near its zero (kTightF64)
  for (index_t j = 0; j < k; ++j) {
    const bool flag = flagged(j);
    if (j == c && complement) continue;
    if (!flag && !complement) continue;
    const dd::DD num = dd::prod_diff(e(j), ts, s, {double(u(j)), 0.0});
    if (complement) others = dd::add(others, num);
    if (flag) {
      di[j] = T(num.hi / s.hi) * g;
      tight |= std::fabs(num.hi) < kTightF64 * double(u(j)) * s.hi;
    }
  }
  if (complement) {
    di[c] = T(-others.hi / s.hi) * g;
    tight |= std::fabs(others.hi) < kTightF64 * (ts.hi - double(u(c))) * s.hi;
  }
  if constexpr (std::is_same_v<T, double>) {
    if (tight) cross_entropy_soft_td(di, zi, u, k, mx, g, flagged);
  }
}

// The same in triple-double, for a float64 row that double-double left tight:
// e_j, s and t_sum as triple-doubles, each numerator e_j t_sum - u_j s formed
// exactly from them (every partial product in one expansion) and only then
// rounded, so that its error is ~2^-150 of the terms whatever it cancels.
template <class T, class U, class Flag>
FM_NOINLINE void cross_entropy_soft_td(T* di, const T* zi, U u, index_t k, T mx, T g,
                                       Flag flagged) {
  auto e = [&](index_t j) {
    const dd::DD x = dd::two_sum(double(zi[j]), -double(mx));  // exact z_j - max
    return td::exp_neg(x.hi, x.lo);
  };
  td::TD s = td::from(0.0), ts = td::from(0.0);
  index_t c = 0;
  for (index_t j = 0; j < k; ++j) {
    s = td::add(s, e(j));
    ts = td::add(ts, td::from(double(u(j))));
    c = u(j) > u(c) ? j : c;
  }
  const bool complement = double(u(c)) > 0.5 * ts.x0 && flagged(c);
  td::TD others = td::from(0.0);
  for (index_t j = 0; j < k; ++j) {
    const bool flag = flagged(j);
    if (j == c && complement) continue;
    if (!flag && !complement) continue;
    td::Expansion num;
    num.add_prod(e(j), ts);
    num.add_prod(-double(u(j)), s);
    if (complement) others = td::add(others, num.to_td());
    if (flag) di[j] = T(td::div(num, s)) * g;
  }
  if (complement) {
    td::Expansion num;
    num.add(td::TD{-others.x0, -others.x1, -others.x2});
    di[c] = T(td::div(num, s)) * g;
  }
}

// The flagged classes (may_cancel) of a dense-target row: float64 goes to
// double-double; float32 recomputes them in double (exp_neg_f64, the
// vectorized e^x <= 0) and sends only those below kTightF32 on.
template <class T, class U>
FM_NOINLINE void cross_entropy_soft_exact(T* di, const T* zi, const T* yi, U u, index_t k, T mx,
                                          T tsum, T g) {
  auto coarse = [&](index_t j) { return may_cancel(yi[j] * tsum, u(j)); };
  if constexpr (std::is_same_v<T, float>) {
    const double m = mx;
    // s in chunks: the exponentials into a small stack buffer (a loop that
    // vectorizes), then summed; no allocation on the training step.
    constexpr index_t kChunk = 128;
    double buf[kChunk];
    double s = 0.0, ts = 0.0;
    for (index_t j0 = 0; j0 < k; j0 += kChunk) {
      const index_t len = std::min(kChunk, k - j0);
      for (index_t j = 0; j < len; ++j) buf[j] = exp_neg_f64(double(zi[j0 + j]) - m);
      for (index_t j = 0; j < len; ++j) s += buf[j];
    }
    for (index_t j = 0; j < k; ++j) ts += double(u(j));
    bool tight = false;
    for (index_t j = 0; j < k; ++j) {
      if (!coarse(j)) continue;
      const double q = exp_neg_f64(double(zi[j]) - m) / s * ts, a = u(j);
      const double r = q - a;
      if (std::fabs(r) >= kTightF32 * std::max(q, a))
        di[j] = T(r) * g;
      else
        tight = true;
    }
    if (tight) cross_entropy_soft_dd(di, zi, u, k, mx, g, coarse);
  } else {
    cross_entropy_soft_dd(di, zi, u, k, mx, g, coarse);
  }
}

// Whether the Poisson loss term exp(z) - t z (ez, tz) is one the float64
// loop cannot keep: within a factor 2 the subtraction is exact (Sterbenz) and
// the result holds only the roundings of exp and of t z.
inline bool poisson_terms_close(double ez, double tz) { return tz > 0.5 * ez && tz < 2.0 * ez; }

// A float64 Poisson row's loss sum_j exp(z_j) - t_j z_j again, added in the
// same order, its terms within a factor 2 of each other (where the
// subtraction keeps only the rounding of exp and of t z) exact to the last
// bit (td::exp_minus_prod); out of line, the loss loop's rare branch.
FM_NOINLINE double poisson_row_loss_exact(const double* z, const double* t, const double* y,
                                          index_t k) {
  double li = 0.0;
  for (index_t j = 0; j < k; ++j) {
    const double ez = y[j], tz = t[j] * z[j];
    li += poisson_terms_close(ez, tz) ? td::exp_minus_prod(z[j], t[j]) : ez - tz;
  }
  return li;
}

// exp(z) - t in double-double, out of line (the loss loop's rare branch);
// for float64, in triple-double where that is below kTightF64 of t.
template <class T>
FM_NOINLINE double poisson_residual_dd(double z, double t) {
  const double r = dd::exp_minus(z, t);
  if constexpr (std::is_same_v<T, double>) {
    if (std::fabs(r) < kTightF64 * t) return td::exp_minus(z, t);
  }
  return r;
}

// sigmoid(z) - t for a soft target 0 < t < 1, given the fast r (ez = e^-|z|,
// y = sigmoid(z)): float64 keeps r outside may_cancel and takes
// double-double inside, triple-double below kTightF64 of the cancelling term;
// float32 recomputes in double and takes double-double below kTightF32.
template <class T>
FM_NOINLINE T bce_soft_residual(T z, T t, T ez, T y, T r) {
  if constexpr (std::is_same_v<T, float>) {
    const double zd = z, td = t;
    const double e = std::exp(-std::fabs(zd));
    const double sm = e / (1.0 + e);  // sigmoid(-|z|)
    const double a = zd > 0.0 ? 1.0 - td : td;
    const double rd = zd > 0.0 ? a - sm : sm - a;
    if (std::fabs(rd) >= kTightF32 * std::max(a, sm)) return T(rd);
    return T(dd::sigmoid_minus(zd, td));
  } else {
    const T q = z > T(0) ? ez * y : y;
    const T a = z > T(0) ? T(1) - t : t;
    if (!may_cancel(q, a)) return r;
    const double rd = dd::sigmoid_minus(z, t);
    return std::fabs(rd) < kTightF64 * a ? td::sigmoid_minus(z, t) : rd;
  }
}

// Per-row loss sums into row_loss and, if d != nullptr, the gradient. inv_den
// is 1 / the loss's denominator (n, n k, or sum_i c_{y_i}).
//
// One body serves both cases so that they round alike: Weighted = false is the
// plain mean, with every weight term removed at compile time (the hot path
// pays nothing for weights); Weighted = true scales each row's gradient by
// g = w_i * inv_den and its loss sum by w_i, where w_i = s_i (times c_{y_i}
// for class ids). A weight of exactly 1 changes no bit: 1 * inv_den and
// double(1) * li are exact, and (1 - t) + t == 1 for every t in [0, 1]
// (BCE's class weight with c = (1, 1)), so all-ones weights reproduce the
// unweighted result bitwise.
template <class T, bool Weighted>
void loss_rows(Loss loss, T* d, const T* z, const T* y, const Target<T>& t, index_t n,
               index_t k, T inv_den, double* row_loss, const T* tail_rows) {
  const T* sw = t.sample_weight;
  const T* cw = t.class_weight;
  (void)sw;
  (void)cw;
  const int nt = threads_for(double(n) * k * 16.0);
  parallel_for(n, nt, [&](index_t i) {
    const T* zi = z + i * k;
    const T* yi = y + i * k;
    T* di = d ? d + i * k : nullptr;
    T wi = T(1);  // the row's weight; stays 1 (and is folded away) when unweighted
    if constexpr (Weighted) {
      if (sw) wi = sw[i];
    }
    double li = 0.0;
    switch (loss) {
      case Loss::mse: {
        // class_weight has no meaning for regression; the bindings refuse it.
        const T g = Weighted ? wi * inv_den : inv_den;
        const T* ti = t.dense + i * k;
        for (index_t j = 0; j < k; ++j) {
          const T r = yi[j] - ti[j];
          li += double(r) * double(r);
          if (di) di[j] = T(2) * r * g;
        }
        break;
      }
      case Loss::poisson: {
        // Like mse: one row weight, no class weights (the bindings refuse them).
        // The element loss exp(z) - t z is summed in double from y = exp(z):
        // near the optimum (exp(z) ~ t) its two terms nearly cancel when
        // t log t ~ t, and float32 arithmetic would lose their low bits.
        const T g = Weighted ? wi * inv_den : inv_den;
        const T* ti = t.dense + i * k;
        bool near = false;   // some gradient to redo in double-double (below)
        bool lossy = false;  // float64: some loss term to redo exactly (below)
        for (index_t j = 0; j < k; ++j) {
          if constexpr (std::is_same_v<T, float>) {
            // In double: exp(z) - t z and exp(z) - t then round once (exact
            // to float), also where the two terms nearly cancel; expm1 as
            // below for a count of 1 near z = 0.
            const double zd = zi[j], td = ti[j];
            // Past float's range the mean is inf, as the float output y is:
            // a diverged network shows an infinite loss (losses.h).
            const double ez = std::isinf(yi[j]) ? double(yi[j]) : std::exp(zd);
            li += ez - td * zd;
            if (di) {
              const double r = std::fabs(zd) < 1.0 ? (1.0 - td) + std::expm1(zd) : ez - td;
              di[j] = T(r) * g;
              // Within kTightF32 of a zero z = log t (t != 1) even double's
              // exp(z) - t keeps too few digits for float.
              near |= td != 1.0 && std::fabs(r) < kTightF32 * td;
            }
          } else {
            const double ez = double(yi[j]), tz = double(ti[j]) * double(zi[j]);
            li += ez - tz;
            lossy |= poisson_terms_close(ez, tz);  // redone below
            // |z| < 1: (1 - t) + expm1(z) is exact for t = 1 (a count of 1
            // near its optimum z = 0), where exp(z) - 1 would cancel. The
            // other zeros z = log t of this gradient are below exp's own
            // rounding (may_cancel, redone below).
            if (di) {
              const T r = std::fabs(zi[j]) < T(1) ? (T(1) - ti[j]) + std::expm1(zi[j])
                                                  : yi[j] - ti[j];
              di[j] = r * g;
              near |= ti[j] != T(1) && may_cancel(yi[j], ti[j]);
            }
          }
        }
        // The flagged gradients again, in double-double (dd::exp_minus), in a
        // second pass so that the loop above has no call in it.
        if (near) {
          for (index_t j = 0; j < k; ++j) {
            const double zd = zi[j], td = ti[j];
            bool redo;
            if constexpr (std::is_same_v<T, float>) {
              const double ez = std::isinf(yi[j]) ? double(yi[j]) : std::exp(zd);
              const double r = std::fabs(zd) < 1.0 ? (1.0 - td) + std::expm1(zd) : ez - td;
              redo = td != 1.0 && std::fabs(r) < kTightF32 * td;
            } else {
              redo = ti[j] != T(1) && may_cancel(yi[j], ti[j]);
            }
            if (redo) di[j] = T(poisson_residual_dd<T>(zd, td)) * g;
          }
        }
        if constexpr (std::is_same_v<T, double>) {
          if (lossy) li = poisson_row_loss_exact(zi, ti, yi, k);
        }
        break;
      }
      case Loss::binary_cross_entropy: {
        const T g = Weighted ? wi * inv_den : inv_den;
        const T* ti = t.dense + i * k;
        bool soft = false;
        for (index_t j = 0; j < k; ++j) {
          const T zj = zi[j];
          const T ez = std::exp(-std::fabs(zj));
          // softplus(z) - t z as two non-negative terms, z (1 - t) + log1p(ez)
          // for z > 0 and -z t + log1p(ez) otherwise: max(z, 0) - z t would
          // cancel for a soft target near 1 (1 - t is exact there, Sterbenz).
          // For t in {0, 1} both forms give the same bits.
          const T e = (zj > T(0) ? zj * (T(1) - ti[j]) : -zj * ti[j]) + std::log1p(ez);
          // sigmoid(z) - t without forming 1 - tiny: with s = sigmoid(-|z|),
          // it is (1 - t) - s for z > 0 (exact for t = 1: -s, ~e^-z, where
          // y - 1 gives 0) and s - t otherwise.
          // y = sigmoid_scalar(z) from loss_output: 1/(1+ez) for z >= 0, so
          // s = ez y there; ez/(1+ez) = s = y itself for z < 0 (no division).
          const T r = zj > T(0) ? (T(1) - ti[j]) - ez * yi[j] : yi[j] - ti[j];
          soft |= ti[j] > T(0) && ti[j] < T(1);
          if constexpr (Weighted) {
            // The element's weight depends on its target only, so it scales
            // the gradient sigmoid(z) - t as it scales the loss.
            const T w = cw ? cw[0] * (T(1) - ti[j]) + cw[1] * ti[j] : T(1);
            li += double(w) * double(e);
            if (di) di[j] = r * (w * g);
          } else {
            li += double(e);
            if (di) di[j] = r * g;
          }
        }
        // Soft targets cancel near z = logit(t): their gradients are redone
        // in a second pass (bce_soft_residual), so that the loop above, all
        // that 0/1 targets (which never cancel) run, has no call in it (one
        // costs that loop ~20%).
        if (soft && di) {
          for (index_t j = 0; j < k; ++j) {
            const T zj = zi[j], tj = ti[j];
            if (!(tj > T(0) && tj < T(1))) continue;
            const T ez = std::exp(-std::fabs(zj));
            const T r0 = zj > T(0) ? (T(1) - tj) - ez * yi[j] : yi[j] - tj;
            const T r = bce_soft_residual(zj, tj, ez, yi[j], r0);
            const T w = Weighted && cw ? cw[0] * (T(1) - tj) + cw[1] * tj : T(1);
            di[j] = Weighted ? r * (w * g) : r * g;
          }
        }
        break;
      }
      case Loss::cross_entropy: {
        // -log p_c = (max_j z_j - z_c) + log sum_j exp(z_j - max): both
        // terms >= 0, so nothing cancels; the second, log1p(r), comes from
        // softmax's tail r that loss_output wrote (tail_rows). Writing lse - z_c
        // instead rounds lse to the ulp of max z, all of a small loss.
        const T r = tail_rows[i];
        const T lse = log1p_softmax(r);
        // p_c - 1 = -r / (1 + r) for a dominant class c (p_c > 1/2 makes it
        // the unique max, the 1 of s = 1 + r): from the accurate tail,
        // where 1 - p_c would cancel and -sum_{j != c} p_j adds their errors.
        auto pc1 = [&] { return -double(r) / (1.0 + double(r)); };
        const T mx = row_max(zi, k);
        if (t.labels) {
          const int32_t c = t.labels[i];
          if constexpr (Weighted) {
            if (cw) wi *= cw[c];
          }
          const T g = Weighted ? wi * inv_den : inv_den;
          li = (double(mx) - double(zi[c])) + double(lse);
          if (di) {
            for (index_t j = 0; j < k; ++j) di[j] = yi[j] * g;
            if (yi[c] > T(0.5)) {
              di[c] = T(pc1()) * g;
            } else {
              di[c] -= g;
            }
          }
        } else {
          // Class weights enter as the weighted target u_j = c_j t_j: the row
          // loss is -sum_j u_j log p_j, whose gradient is p sum_j u_j - u.
          const T g = Weighted ? wi * inv_den : inv_den;
          const T* ti = t.dense + i * k;
          auto u = [&](index_t j) { return Weighted && cw ? cw[j] * ti[j] : ti[j]; };
          // t_sum and the row loss as compensated sums (TwoSum; float32's
          // in double is enough): a plain sum's error grows with k. The
          // loop is a dependent chain either way, and the error terms stay
          // off it.
          auto term = [&](index_t j) {
            return double(u(j)) * ((double(mx) - double(zi[j])) + double(lse));
          };
          double ts = 0.0, ts_lo = 0.0, acc = 0.0, acc_lo = 0.0;
          index_t j0 = 0;
          if constexpr (std::is_same_v<T, double>) {
            // Long rows in four interleaved lanes (simd over l, as softmax_tail).
            if (k >= kSimdMaxRow) {
              constexpr int L = 4;
              double sa[L] = {}, ca[L] = {}, sb[L] = {}, cb[L] = {};
              for (; j0 + L <= k; j0 += L) {
#pragma omp simd
                for (int l = 0; l < L; ++l) {
                  const double uj = u(j0 + l), x = term(j0 + l);
                  const double t1 = sa[l] + uj, t2 = sb[l] + x;
                  ca[l] += two_sum_err(sa[l], uj, t1);
                  cb[l] += two_sum_err(sb[l], x, t2);
                  sa[l] = t1;
                  sb[l] = t2;
                }
              }
              for (int l = 0; l < L; ++l) {
                const double t1 = ts + sa[l], t2 = acc + sb[l];
                ts_lo += two_sum_err(ts, sa[l], t1) + ca[l];
                acc_lo += two_sum_err(acc, sb[l], t2) + cb[l];
                ts = t1;
                acc = t2;
              }
            }
          }
          for (index_t j = j0; j < k; ++j) {
            const double uj = u(j), x = term(j);
            if constexpr (std::is_same_v<T, float>) {
              ts += uj;
              acc += x;
            } else {
              const double t1 = ts + uj, t2 = acc + x;
              ts_lo += two_sum_err(ts, uj, t1);
              acc_lo += two_sum_err(acc, x, t2);
              ts = t1;
              acc = t2;
            }
          }
          const T tsum = T(ts + ts_lo);
          li = acc + acc_lo;
          if (di) {
            // The flags are counted in an integer of T's width (not or-ed
            // into a bool): that form of the loop vectorizes.
            std::conditional_t<std::is_same_v<T, float>, int32_t, int64_t> near = 0;
            for (index_t j = 0; j < k; ++j) {
              const T q = yi[j] * tsum, a = u(j);
              di[j] = (q - a) * g;
              near += may_cancel(q, a) ? 1 : 0;
            }
            // Only flagged rows pay for more (a count of the non-zero
            // targets first). A one-hot row (any weight, u_c = t_sum) is
            // flagged when p_c > 1/2, where it takes t_sum (p_c - 1) as the
            // class-id path forms p_c - 1: -r / (1 + r). Other rows go
            // to cross_entropy_soft_exact.
            if (near) {
              index_t nnz = 0, c = 0;
              for (index_t j = 0; j < k; ++j) {
                nnz += u(j) != T(0);
                c = u(j) != T(0) ? j : c;
              }
              if (nnz != 1) {
                cross_entropy_soft_exact(di, zi, yi, u, k, mx, tsum, g);
              } else if (yi[c] > T(0.5)) {
                di[c] = T(pc1() * double(tsum)) * g;
              }
            }
          }
        }
        break;
      }
    }
    row_loss[i] = Weighted ? double(wi) * li : li;
  });
}

}  // namespace

// Weighted losses (definitions in losses.h). Branching once here keeps the
// unweighted loop exactly what it was. The denominators are n k (mse, binary
// cross-entropy, poisson), n (cross-entropy with dense targets, or with class ids and
// no class weights) and W = sum_i c_{y_i} (class ids with class weights),
// summed in row order before the parallel loop so that it is thread-count
// independent. W == 0 (every row's class has weight 0) makes the loss 0/0;
// we return loss 0 and gradient 0, the limit of a batch that contributes
// nothing (torch returns NaN there), so that one such batch cannot poison
// training.
template <class T>
double loss_forward_backward(Loss loss, T* d, const T* z, const T* y, const Target<T>& t,
                             index_t n, index_t k, double* row_loss, const T* tail,
                             double den_given) {
  if (n <= 0) return 0.0;
  const bool ce = loss == Loss::cross_entropy;
  double den = ce ? double(n) : double(n) * double(k);
  T inv_den = ce ? T(1) / T(n) : T(1) / (T(n) * T(k));
  const bool regression = loss == Loss::mse || loss == Loss::poisson;
  const bool weighted = t.sample_weight || (t.class_weight && !regression);
  if (!weighted) {
    if (den_given > 0.0) {
      den = den_given;
      inv_den = T(1) / T(den);
    }
    loss_rows<T, false>(loss, d, z, y, t, n, k, inv_den, row_loss, tail);
  } else {
    if (den_given > 0.0) {
      den = den_given;
      inv_den = T(1) / T(den);
    } else if (ce && t.labels && t.class_weight) {
      den = 0.0;
      for (index_t i = 0; i < n; ++i) den += double(t.class_weight[t.labels[i]]);
      if (den == 0.0) {
        if (d) std::fill(d, d + n * k, T(0));
        return 0.0;
      }
      inv_den = T(1) / T(den);
    }
    loss_rows<T, true>(loss, d, z, y, t, n, k, inv_den, row_loss, tail);
  }
  double total = 0.0;
  for (index_t i = 0; i < n; ++i) total += row_loss[i];
  return total / den;
}

template void loss_output<float>(Loss, float*, const float*, index_t, index_t, float*);
template void loss_output<double>(Loss, double*, const double*, index_t, index_t, double*);
template double loss_forward_backward<float>(Loss, float*, const float*, const float*,
                                             const Target<float>&, index_t, index_t, double*,
                                             const float*, double);
template double loss_forward_backward<double>(Loss, double*, const double*, const double*,
                                              const Target<double>&, index_t, index_t, double*,
                                              const double*, double);

}  // namespace fastmlp
