#include "nn/activations.h"

#include "common/parallel.h"
#include "gemm/ukr.h"

namespace fastmlp {

template <class T>
void activation_forward(T* y, const T* z, index_t rows, index_t cols, Act act) {
  const int nt = threads_for(double(rows) * cols * 4.0);
  const GemmKernel<T>& K = active_gemm_kernel<T>();
  parallel_for(rows, nt,
               [&](index_t i) { act_forward_fast(K, y + i * cols, z + i * cols, cols, act); });
}

template <class T>
void activation_backward(T* dz, const T* dy, const T* z, const T* y, index_t rows, index_t cols,
                         Act act) {
  const int nt = threads_for(double(rows) * cols * 4.0);
  const GemmKernel<T>& K = active_gemm_kernel<T>();
  parallel_for(rows, nt, [&](index_t i) {
    act_backward_fast(K, dz + i * cols, dy + i * cols, z + i * cols, y + i * cols, cols, act);
  });
}

template void activation_forward<float>(float*, const float*, index_t, index_t, Act);
template void activation_forward<double>(double*, const double*, index_t, index_t, Act);
template void activation_backward<float>(float*, const float*, const float*, const float*, index_t,
                                         index_t, Act);
template void activation_backward<double>(double*, const double*, const double*, const double*,
                                          index_t, index_t, Act);

}  // namespace fastmlp
