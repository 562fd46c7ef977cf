// The optimizers' loops (optimizer_loops.h) compiled for AVX2 (-mavx2,
// -ffp-contract=off: wider vectors, the same rounded operations, the same
// bits as the portable copy). optimizer.cpp calls them only when the GEMM
// path in use is avx2, which dispatch.cpp selects after checking the CPU.
#include "optim/optimizer_loops.h"

namespace fastmlp {

template <class T>
bool optimizer_loops_avx2(const OptConfig& cfg, T* p, const T* g, T* const* state, index_t count,
                     int64_t step) {
  return run_optimizer_loops<T>(cfg, p, g, state, count, step);
}

template bool optimizer_loops_avx2<float>(const OptConfig&, float*, const float*, float* const*,
                                     index_t, int64_t);
template bool optimizer_loops_avx2<double>(const OptConfig&, double*, const double*,
                                      double* const*, index_t, int64_t);

}  // namespace fastmlp
