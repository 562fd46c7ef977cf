#include "optim/sgd.h"

#include "common/parallel.h"
#include "common/restrict.h"

namespace fastmlp {

template <class T>
void sgd_step(T* FM_RESTRICT p, const T* FM_RESTRICT g, T* FM_RESTRICT buf, index_t count,
              const SgdConfig<T>& cfg, bool first_step) {
  const T lr = cfg.lr, mu = cfg.momentum, wd = cfg.weight_decay;
  const bool nesterov = cfg.nesterov;
  const int nt = threads_for(double(count), 65536.0);
  (void)nt;
  if (mu == T(0)) {
#if defined(_OPENMP)
#pragma omp parallel for simd num_threads(nt) if (nt > 1) schedule(static)
#endif
    for (index_t i = 0; i < count; ++i) p[i] -= lr * (g[i] + wd * p[i]);
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel for simd num_threads(nt) if (nt > 1) schedule(static)
#endif
  for (index_t i = 0; i < count; ++i) {
    const T gi = g[i] + wd * p[i];
    const T b = first_step ? gi : mu * buf[i] + gi;
    buf[i] = b;
    p[i] -= lr * (nesterov ? gi + mu * b : b);
  }
}

template void sgd_step<float>(float*, const float*, float*, index_t, const SgdConfig<float>&, bool);
template void sgd_step<double>(double*, const double*, double*, index_t, const SgdConfig<double>&,
                               bool);

}  // namespace fastmlp
