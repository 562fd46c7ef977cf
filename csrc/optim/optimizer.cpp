// The optimizers of optimizer.h, each one fused element-wise pass over the
// flat buffers. Python twins: fastmlp.reference.{sgd,adam,rmsprop,adagrad}_step
// and fastmlp.reference.optimizer_step.
//
// Each loop repeats torch.optim's single-tensor CPU path (torch 2.13,
// foreach=False) operation by operation, in its order, so that float64
// agrees with torch to rounding: every tensor op there (mul_, add_ with
// alpha, addcmul_, addcdiv_, lerp_, sqrt) becomes one rounded T operation
// here, and every Python-float scalar (1 - beta, lr / bias_correction, ...)
// is computed in double and converted to T once, as torch converts a Python
// scalar to the tensor's dtype inside the kernel. torch's vectorised kernels
// fuse some products into FMAs (add with alpha, lerp); a portable build has
// no FMA, so float32 agrees with torch to a few ulps per step, not bitwise.
//
// State buffers, in order (optimizer_state_count says how many):
//   sgd      momentum_buffer                     (momentum != 0)
//   adam(w)  exp_avg, exp_avg_sq, max_exp_avg_sq (the last with amsgrad)
//   rmsprop  square_avg, grad_avg (centered), momentum_buffer (momentum > 0)
//   adagrad  sum
//
// Element-wise only: a thread's chunk never reads another's elements, so the
// result is bitwise the same for any thread count.
#include "optim/optimizer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/parallel.h"
#include "common/restrict.h"
#include "gemm/gemm.h"
#include "optim/optimizer_loops.h"


namespace fastmlp {

namespace {

// Shortest text that reads back as v, so a message shows the value given.
std::string num_str(double v) {
  char buf[40];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

void check(bool ok, const char* field, const char* expected, double got) {
  if (!ok)
    throw std::invalid_argument(std::string(field) + ": expected " + expected + ", got " +
                                num_str(got));
}

// The copy of the loops to run: the instruction set of the GEMM path in use
// (which FASTMLP_ISA / fm.ops.set_isa choose, after checking the CPU), so
// tests can run every copy. They give the same bits; only the speed differs.
enum class OptimizerIsa { generic, avx2, avx512 };

OptimizerIsa optimizer_isa() {
  const char* name = gemm_kernel_name();
  if (std::strcmp(name, "avx512") == 0) return OptimizerIsa::avx512;
  if (std::strcmp(name, "avx2") == 0) return OptimizerIsa::avx2;
  return OptimizerIsa::generic;
}

}  // namespace

#if defined(FASTMLP_HAVE_X86_KERNELS)
// optimizer_avx2.cpp / optimizer_avx512.cpp: run_optimizer_loops compiled for
// that instruction set.
template <class T>
bool optimizer_loops_avx2(const OptConfig&, T*, const T*, T* const*, index_t, int64_t);
template <class T>
bool optimizer_loops_avx512(const OptConfig&, T*, const T*, T* const*, index_t, int64_t);
#endif

void validate(const OptConfig& c) {
  const int kind = int(c.kind);
  if (kind < 0 || kind >= kNumOptKinds)
    throw std::invalid_argument("kind: expected an optimizer id in [0, " +
                                std::to_string(kNumOptKinds) + "), got " + std::to_string(kind));
  auto finite = [](double v) { return std::isfinite(v); };
  check(finite(c.lr) && c.lr >= 0.0, "lr", "a finite value >= 0", c.lr);
  check(finite(c.weight_decay) && c.weight_decay >= 0.0, "weight_decay", "a finite value >= 0",
        c.weight_decay);
  check(finite(c.momentum) && c.momentum >= 0.0, "momentum", "a finite value >= 0", c.momentum);
  check(finite(c.dampening), "dampening", "a finite value", c.dampening);
  check(finite(c.beta1) && c.beta1 >= 0.0 && c.beta1 < 1.0, "beta1", "a value in [0, 1)", c.beta1);
  check(finite(c.beta2) && c.beta2 >= 0.0 && c.beta2 < 1.0, "beta2", "a value in [0, 1)", c.beta2);
  // eps = 0 would divide 0 by 0 wherever a gradient has always been zero, the
  // padding between parameter blocks included: the dividing optimizers need
  // eps > 0, and large enough to stay non-zero in float32.
  if (c.kind == OptKind::sgd)
    check(finite(c.eps) && c.eps >= 0.0, "eps", "a finite value >= 0", c.eps);
  else
    check(finite(c.eps) && c.eps >= 1e-37, "eps", "a finite value >= 1e-37", c.eps);
  check(finite(c.alpha) && c.alpha >= 0.0 && c.alpha <= 1.0, "alpha", "a value in [0, 1]",
        c.alpha);
  check(finite(c.lr_decay) && c.lr_decay >= 0.0, "lr_decay", "a finite value >= 0", c.lr_decay);
  check(finite(c.initial_accumulator) && c.initial_accumulator >= 0.0, "initial_accumulator",
        "a finite value >= 0", c.initial_accumulator);
  if (c.nesterov && c.kind == OptKind::sgd) {
    if (c.momentum <= 0.0)
      throw std::invalid_argument("nesterov: requires momentum > 0, got momentum " +
                                  num_str(c.momentum));
    if (c.dampening != 0.0)
      throw std::invalid_argument("nesterov: requires dampening 0, got dampening " +
                                  num_str(c.dampening));
  }
}

int optimizer_state_count(const OptConfig& c) {
  switch (c.kind) {
    case OptKind::sgd:
      return c.momentum != 0.0 ? 1 : 0;
    case OptKind::adam:
    case OptKind::adamw:
      return c.amsgrad ? 3 : 2;
    case OptKind::rmsprop:
      return 1 + (c.centered ? 1 : 0) + (c.momentum > 0.0 ? 1 : 0);
    case OptKind::adagrad:
      return 1;
  }
  throw std::invalid_argument("kind: expected an optimizer id in [0, " +
                              std::to_string(kNumOptKinds) + "), got " +
                              std::to_string(int(c.kind)));
}

template <class T>
void optimizer_init_state(const OptConfig& cfg, T* const* state, index_t count) {
  const int ns = optimizer_state_count(cfg);
  // torch.full_like(param, initial_accumulator_value) for Adagrad's sum;
  // zeros everywhere else (SGD's buffer is overwritten on step 1 anyway).
  const T first = cfg.kind == OptKind::adagrad ? T(cfg.initial_accumulator) : T(0);
  for (int s = 0; s < ns; ++s) {
    T* FM_RESTRICT b = state[s];
    const T value = s == 0 ? first : T(0);
    for (index_t i = 0; i < count; ++i) b[i] = value;
  }
}

template <class T>
void optimizer_step(const OptConfig& cfg, T* p, const T* g, T* const* state, index_t count,
                    int64_t step) {
  if (step < 1)
    throw std::invalid_argument("step: expected a 1-based step number >= 1, got " +
                                std::to_string(step));
  if (count <= 0) return;
  bool known;
  switch (optimizer_isa()) {
#if defined(FASTMLP_HAVE_X86_KERNELS)
    case OptimizerIsa::avx512:
      known = optimizer_loops_avx512<T>(cfg, p, g, state, count, step);
      break;
    case OptimizerIsa::avx2:
      known = optimizer_loops_avx2<T>(cfg, p, g, state, count, step);
      break;
#endif
    default:
      known = run_optimizer_loops<T>(cfg, p, g, state, count, step);
  }
  if (known) return;
  throw std::invalid_argument("kind: expected an optimizer id in [0, " +
                              std::to_string(kNumOptKinds) + "), got " +
                              std::to_string(int(cfg.kind)));
}

template void optimizer_init_state<float>(const OptConfig&, float* const*, index_t);
template void optimizer_init_state<double>(const OptConfig&, double* const*, index_t);
template void optimizer_step<float>(const OptConfig&, float*, const float*, float* const*, index_t,
                                    int64_t);
template void optimizer_step<double>(const OptConfig&, double*, const double*, double* const*,
                                     index_t, int64_t);

}  // namespace fastmlp
