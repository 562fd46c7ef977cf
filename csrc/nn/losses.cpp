#include "nn/losses.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "common/parallel.h"
#include "nn/activations.h"

namespace fastmlp {

// max_j z[j] for k >= 1. The omp simd max reduction lets the compiler use
// vector max instructions (a plain ?: loop stays scalar without
// -ffast-math, one dependent compare per element); the order of a max does
// not change its value for finite inputs.
template <class T>
FM_ALWAYS_INLINE T row_max(const T* z, index_t k) {
  T mx = z[0];
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

template <class T>
void loss_output(Loss loss, T* y, const T* z, index_t n, index_t k, T* lse) {
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
      // over the others. lse[i] = log1p(r) = log s keeps the digits that
      // log(s) would lose when r << 1 (a confident prediction, loss ~ r).
      // r counts each class tied with the max as 1 (its e^0), less the one
      // that is the 1 of s, plus the others' terms: no index search, so the
      // loops stay branch-free.
      const T mx = row_max(zi, k);
      for (index_t j = 0; j < k; ++j) yi[j] = exp_neg(zi[j] - mx);  // z - max(z) <= 0
      T r = T(0);
      index_t ties = 0;
      for (index_t j = 0; j < k; ++j) {
        const bool top = zi[j] == mx;
        ties += top;
        r += top ? T(0) : yi[j];
      }
      r += T(ties > 0 ? ties - 1 : 0);
      lse[i] = log1p_softmax(r);
      const T inv = T(1) / (T(1) + r);
      for (index_t j = 0; j < k; ++j) yi[j] *= inv;
    }
  });
}

namespace {

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
               index_t k, T inv_den, double* row_loss, const T* lse_rows) {
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
            if (di) di[j] = T(std::fabs(zd) < 1.0 ? (1.0 - td) + std::expm1(zd) : ez - td) * g;
          } else {
            li += double(yi[j]) - double(ti[j]) * double(zi[j]);
            // |z| < 1: (1 - t) + expm1(z) is exact for t = 1 (a count of 1
            // near its optimum z = 0), where exp(z) - 1 would cancel. Other
            // zeros z = log t of this gradient stay limited by exp's rounding.
            if (di) {
              const T r = std::fabs(zi[j]) < T(1) ? (T(1) - ti[j]) + std::expm1(zi[j])
                                                  : yi[j] - ti[j];
              di[j] = r * g;
            }
          }
        }
        break;
      }
      case Loss::binary_cross_entropy: {
        const T g = Weighted ? wi * inv_den : inv_den;
        const T* ti = t.dense + i * k;
        for (index_t j = 0; j < k; ++j) {
          const T zj = zi[j];
          const T ez = std::exp(-std::fabs(zj));
          const T e = (zj > T(0) ? zj : T(0)) - zj * ti[j] + std::log1p(ez);
          // sigmoid(z) - t without forming 1 - tiny: with s = sigmoid(-|z|),
          // it is (1 - t) - s for z > 0 (exact for t = 1: -s, ~e^-z, where
          // y - 1 gives 0) and s - t otherwise.
          // y = sigmoid_scalar(z) from loss_output: 1/(1+ez) for z >= 0, so
          // s = ez y there; ez/(1+ez) = s = y itself for z < 0 (no division).
          const T r = zj > T(0) ? (T(1) - ti[j]) - ez * yi[j] : yi[j] - ti[j];
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
        break;
      }
      case Loss::cross_entropy: {
        // -log p_c = (max_j z_j - z_c) + log sum_j exp(z_j - max): both
        // terms >= 0, so nothing cancels; the second, log1p(r), comes from
        // the softmax pass of loss_output (lse_rows). Writing lse - z_c
        // instead rounds lse to the ulp of max z, all of a small loss.
        const T lse = lse_rows[i];
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
            // p_c - 1 = -sum_{j != c} p_j: when p_c > 1/2 the sum keeps the
            // digits that the subtraction from 1 would cancel.
            if (yi[c] > T(0.5)) {
              double q = 0.0;
              for (index_t j = 0; j < k; ++j) q += j == c ? 0.0 : double(yi[j]);
              di[c] = -T(q) * g;
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
          T tsum = T(0);
          double acc = 0.0;
          for (index_t j = 0; j < k; ++j) {
            const T uj = u(j);
            tsum += uj;
            acc += double(uj) * ((double(mx) - double(zi[j])) + double(lse));
          }
          li = acc;
          if (di)
            for (index_t j = 0; j < k; ++j) di[j] = (yi[j] * tsum - u(j)) * g;
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
                             index_t n, index_t k, double* row_loss, const T* lse,
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
    loss_rows<T, false>(loss, d, z, y, t, n, k, inv_den, row_loss, lse);
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
    loss_rows<T, true>(loss, d, z, y, t, n, k, inv_den, row_loss, lse);
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
