// Chooses the micro-kernel once per process. Only the portable kernel exists
// so far; the ISA-specific ones plug in here, selected from cpuid + xgetbv
// and overridable with FASTMLP_ISA.
#include "gemm/gemm.h"
#include "gemm/ukr.h"

namespace fastmlp {

template <>
const GemmKernel<float>& active_gemm_kernel<float>() {
  return generic::kSgemm;
}
template <>
const GemmKernel<double>& active_gemm_kernel<double>() {
  return generic::kDgemm;
}

const char* gemm_kernel_name() { return active_gemm_kernel<float>().name; }

}  // namespace fastmlp
