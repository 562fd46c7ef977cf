#include "nn/losses.h"

#include <cmath>

#include "common/parallel.h"
#include "nn/activations.h"

namespace fastmlp {

template <class T>
void loss_output(Loss loss, T* y, const T* z, index_t n, index_t k) {
  if (loss == Loss::mse) return;
  const int nt = threads_for(double(n) * k * 16.0);
  (void)nt;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
#endif
  for (index_t i = 0; i < n; ++i) {
    const T* zi = z + i * k;
    T* yi = y + i * k;
    if (loss == Loss::binary_cross_entropy) {
      for (index_t j = 0; j < k; ++j) yi[j] = sigmoid_scalar(zi[j]);
    } else {
      T mx = zi[0];
      for (index_t j = 1; j < k; ++j) mx = zi[j] > mx ? zi[j] : mx;
      T s = T(0);
      for (index_t j = 0; j < k; ++j) {
        yi[j] = std::exp(zi[j] - mx);
        s += yi[j];
      }
      const T inv = T(1) / s;
      for (index_t j = 0; j < k; ++j) yi[j] *= inv;
    }
  }
}

template <class T>
double loss_forward_backward(Loss loss, T* d, const T* z, const T* y, const Target<T>& t,
                             index_t n, index_t k, double* row_loss) {
  if (n <= 0) return 0.0;
  const T inv_n = T(1) / T(n);
  const T inv_nk = T(1) / (T(n) * T(k));
  const int nt = threads_for(double(n) * k * 16.0);
  (void)nt;
#if defined(_OPENMP)
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
#endif
  for (index_t i = 0; i < n; ++i) {
    const T* zi = z + i * k;
    const T* yi = y + i * k;
    T* di = d ? d + i * k : nullptr;
    double li = 0.0;
    switch (loss) {
      case Loss::mse: {
        const T* ti = t.dense + i * k;
        for (index_t j = 0; j < k; ++j) {
          const T r = yi[j] - ti[j];
          li += double(r) * double(r);
          if (di) di[j] = T(2) * r * inv_nk;
        }
        break;
      }
      case Loss::binary_cross_entropy: {
        const T* ti = t.dense + i * k;
        for (index_t j = 0; j < k; ++j) {
          const T zj = zi[j];
          li += double((zj > T(0) ? zj : T(0)) - zj * ti[j] + std::log1p(std::exp(-std::fabs(zj))));
          if (di) di[j] = (yi[j] - ti[j]) * inv_nk;
        }
        break;
      }
      case Loss::cross_entropy: {
        // log-sum-exp from the logits: lse = max + log(sum exp(z - max)).
        T mx = zi[0];
        for (index_t j = 1; j < k; ++j) mx = zi[j] > mx ? zi[j] : mx;
        T s = T(0);
        for (index_t j = 0; j < k; ++j) s += std::exp(zi[j] - mx);
        const T lse = mx + std::log(s);
        if (t.labels) {
          const int32_t c = t.labels[i];
          li = double(lse - zi[c]);
          if (di) {
            for (index_t j = 0; j < k; ++j) di[j] = yi[j] * inv_n;
            di[c] -= inv_n;
          }
        } else {
          const T* ti = t.dense + i * k;
          T tsum = T(0);
          double acc = 0.0;
          for (index_t j = 0; j < k; ++j) {
            tsum += ti[j];
            acc += double(ti[j]) * double(lse - zi[j]);
          }
          li = acc;
          if (di)
            for (index_t j = 0; j < k; ++j) di[j] = (yi[j] * tsum - ti[j]) * inv_n;
        }
        break;
      }
    }
    row_loss[i] = li;
  }
  double total = 0.0;
  for (index_t i = 0; i < n; ++i) total += row_loss[i];
  return loss == Loss::cross_entropy ? total / double(n) : total / (double(n) * double(k));
}

template void loss_output<float>(Loss, float*, const float*, index_t, index_t);
template void loss_output<double>(Loss, double*, const double*, index_t, index_t);
template double loss_forward_backward<float>(Loss, float*, const float*, const float*,
                                             const Target<float>&, index_t, index_t, double*);
template double loss_forward_backward<double>(Loss, double*, const double*, const double*,
                                              const Target<double>&, index_t, index_t, double*);

}  // namespace fastmlp
