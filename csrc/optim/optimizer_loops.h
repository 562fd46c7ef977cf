// The optimizers' element-wise loops (optimizer.cpp documents them against
// torch.optim). Included by optimizer.cpp (the portable copy) and by
// optimizer_avx2.cpp / optimizer_avx512.cpp, each compiled with its own
// instruction set and -ffp-contract=off: the vectors are wider, but every
// operation is still the one rounded IEEE operation of the portable copy (no
// fused multiply-add), so every copy gives the same bits. Everything here has
// internal linkage: each including file gets its own copy, compiled with its
// own flags, which the linker cannot merge with another's.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "common/parallel.h"
#include "common/restrict.h"
#include "common/types.h"
#include "optim/optimizer.h"

namespace fastmlp {
namespace {

// torch's lerp (ATen Lerp.h): start + w (end - start) for |w| < 0.5, else
// end - (end - start)(1 - w), which is exact at w = 1. `small` and `one_minus_w`
// are hoisted out of the loop; 1 - w is taken in T, as torch's opmath does.
template <class T>
FM_ALWAYS_INLINE T lerp(T start, T end, T w, bool small, T one_minus_w) {
  return small ? start + w * (end - start) : end - (end - start) * one_minus_w;
}

// Decaying state (momentum buffers, Adam's moments of a gradient that has
// gone to zero, e.g. the weights of an always-blank MNIST pixel) shrinks
// geometrically into the subnormal range, where x86 cores take a microcode
// assist of ~100 cycles per operation: on MNIST a few thousand such elements
// slowed every Adam step by half after a few epochs. State below the
// smallest normal number is therefore stored as 0. The parameter change that
// a subnormal state value could still cause is below 1e-30 relative, far
// under any rounding of the parameters, so no result changes in practice;
// torch keeps the subnormals (and pays for them).
template <class T>
FM_ALWAYS_INLINE T flush_tiny(T x) {
  return std::abs(x) < std::numeric_limits<T>::min() ? T(0) : x;
}

// Threads for `count` elements of a loop costing about `weight` SGD updates each.
int threads_for_update(index_t count, double weight) {
  return threads_for(double(count) * weight, 65536.0);
}

// ----------------------------------------------------------------- SGD
// torch: grad = grad.add(param, alpha=wd); buf = grad.clone() (first step) or
// buf.mul_(mu).add_(grad, alpha=1 - dampening); grad = grad.add(buf, alpha=mu)
// (nesterov) or buf; param.add_(grad, alpha=-lr).
template <class T, bool kMomentum>
void sgd_loop(const OptConfig& c, T* FM_RESTRICT p, const T* FM_RESTRICT g,
              T* FM_RESTRICT buf, index_t n, int64_t step) {
  const T neg_lr = T(-c.lr), wd = T(c.weight_decay), mu = T(c.momentum);
  const T keep_g = T(1.0 - c.dampening);
  const bool decay = c.weight_decay != 0.0, nesterov = c.nesterov, first = step == 1;
  const int nt = threads_for_update(n, 1.0);
  parallel_for_simd(n, nt, [&](index_t i) {
    T gi = g[i];
    if (decay) gi = gi + wd * p[i];
    if (kMomentum) {
      // torch seeds the buffer with the first gradient (no dampening on it).
      const T b = flush_tiny(first ? gi : buf[i] * mu + keep_g * gi);
      buf[i] = b;
      gi = nesterov ? gi + mu * b : b;
    }
    p[i] = p[i] + neg_lr * gi;
  });
}

// ---------------------------------------------------------- Adam, AdamW
// torch (_single_tensor_adam, not capturable):
//   decoupled: param.mul_(1 - lr wd)  else grad = grad.add(param, alpha=wd)
//   exp_avg.lerp_(grad, 1 - beta1)
//   exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
//   step_size = lr / (1 - beta1^t); bc2_sqrt = (1 - beta2^t)^0.5   (Python floats)
//   amsgrad: max_exp_avg_sq = maximum(max_exp_avg_sq, exp_avg_sq), used below
//   denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
//   param.addcdiv_(exp_avg, denom, value=-step_size)
// The loop-invariant choices (L2 decay of the gradient, which form of lerp)
// are template parameters: with them as run-time branches inside the loop
// GCC did not vectorize it, and the Adam step ran 6-10x slower than SGD's
// (2.9M parameters: ~15 ms against ~1.5 ms on Zen 4).
template <class T, bool kAmsgrad, bool kDecayG, bool kW1Small>
void adam_loop(const OptConfig& c, T* FM_RESTRICT p, const T* FM_RESTRICT g,
               T* FM_RESTRICT m, T* FM_RESTRICT v, T* FM_RESTRICT vmax, index_t n,
               int64_t step) {
  const bool decoupled = c.kind == OptKind::adamw;
  const bool scale_p = decoupled && c.weight_decay != 0.0;
  // AdamW's decay multiplies by keep_p, which is exactly 1 without it (x * 1
  // == x for every x, NaN and -0 included): no branch needed.
  const T keep_p = scale_p ? T(1.0 - c.lr * c.weight_decay) : T(1), wd = T(c.weight_decay);
  const T w1 = T(1.0 - c.beta1);
  const T one_minus_w1 = T(1) - w1;
  const T b2 = T(c.beta2), one_minus_b2 = T(1.0 - c.beta2);
  // torch reads the step back from a float tensor as a Python float.
  const double t = double(step);
  const double bias_correction1 = 1.0 - std::pow(c.beta1, t);
  const double bias_correction2 = 1.0 - std::pow(c.beta2, t);
  const T neg_step_size = T(-(c.lr / bias_correction1));
  // torch writes bias_correction2**0.5, i.e. pow, not sqrt.
  const T bc2_sqrt = T(std::pow(bias_correction2, 0.5));
  const T eps = T(c.eps);
  const int nt = threads_for_update(n, 4.0);
  parallel_for_simd(n, nt, [&](index_t i) {
    const T pi = p[i] * keep_p;
    T gi = g[i];
    if constexpr (kDecayG) gi = gi + wd * pi;
    const T mi = flush_tiny(lerp(m[i], gi, w1, kW1Small, one_minus_w1));
    const T vi = flush_tiny(v[i] * b2 + one_minus_b2 * gi * gi);
    m[i] = mi;
    v[i] = vi;
    T vd = vi;
    if constexpr (kAmsgrad) {
      // torch.maximum: NaN in either argument propagates. A bitwise |, not
      // ||: no branch in the loop, which then vectorizes.
      const T vm = vmax[i];
      vd = ((vi > vm) | (vi != vi)) ? vi : vm;
      vmax[i] = vd;
    }
    const T denom = std::sqrt(vd) / bc2_sqrt + eps;
    p[i] = pi + neg_step_size * mi / denom;
  });
}

template <class T>
void adam_dispatch(const OptConfig& c, T* p, const T* g, T* const* state, index_t n,
                   int64_t step) {
  const bool decay_g = c.kind != OptKind::adamw && c.weight_decay != 0.0;
  const bool w1_small = std::abs(T(1.0 - c.beta1)) < T(0.5);
  T* vmax = c.amsgrad ? state[2] : nullptr;
  auto run = [&](auto ams, auto decay, auto small) {
    adam_loop<T, decltype(ams)::value, decltype(decay)::value, decltype(small)::value>(
        c, p, g, state[0], state[1], vmax, n, step);
  };
  using yes = std::true_type;
  using no = std::false_type;
  if (c.amsgrad) {
    if (decay_g)
      w1_small ? run(yes{}, yes{}, yes{}) : run(yes{}, yes{}, no{});
    else
      w1_small ? run(yes{}, no{}, yes{}) : run(yes{}, no{}, no{});
  } else {
    if (decay_g)
      w1_small ? run(no{}, yes{}, yes{}) : run(no{}, yes{}, no{});
    else
      w1_small ? run(no{}, no{}, yes{}) : run(no{}, no{}, no{});
  }
}

// ------------------------------------------------------------- RMSprop
// torch (_single_tensor_rmsprop):
//   grad = grad.add(param, alpha=wd)
//   square_avg.mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
//   centered: grad_avg.lerp_(grad, 1 - alpha);
//             avg = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
//   else      avg = square_avg.sqrt()
//   avg.add_(eps)
//   momentum > 0: buf.mul_(momentum).addcdiv_(grad, avg); param.add_(buf, alpha=-lr)
//   else          param.addcdiv_(grad, avg, value=-lr)
template <class T, bool kCentered, bool kMomentum>
void rmsprop_loop(const OptConfig& c, T* FM_RESTRICT p, const T* FM_RESTRICT g,
                  T* FM_RESTRICT sq, T* FM_RESTRICT ga, T* FM_RESTRICT buf, index_t n) {
  const bool decay = c.weight_decay != 0.0;
  const T wd = T(c.weight_decay), alpha = T(c.alpha), one_minus_alpha = T(1.0 - c.alpha);
  const T w = one_minus_alpha;
  const bool w_small = std::abs(w) < T(0.5);
  const T one_minus_w = T(1) - w;
  const T eps = T(c.eps), mu = T(c.momentum), neg_lr = T(-c.lr);
  const int nt = threads_for_update(n, 4.0);
  parallel_for_simd(n, nt, [&](index_t i) {
    T gi = g[i];
    if (decay) gi = gi + wd * p[i];
    const T si = flush_tiny(sq[i] * alpha + one_minus_alpha * gi * gi);
    sq[i] = si;
    T avg;
    if (kCentered) {
      const T gai = flush_tiny(lerp(ga[i], gi, w, w_small, one_minus_w));
      ga[i] = gai;
      // value=-1: si + (-gai) gai rounds exactly as si - gai gai.
      avg = std::sqrt(si - gai * gai);
    } else {
      avg = std::sqrt(si);
    }
    avg = avg + eps;
    if (kMomentum) {
      const T b = flush_tiny(buf[i] * mu + gi / avg);
      buf[i] = b;
      p[i] = p[i] + neg_lr * b;
    } else {
      p[i] = p[i] + neg_lr * gi / avg;
    }
  });
}

// ------------------------------------------------------------- Adagrad
// torch (_single_tensor_adagrad, dense):
//   clr = lr / (1 + (t - 1) lr_decay)                       (Python floats)
//   grad = grad.add(param, alpha=wd)
//   state_sum.addcmul_(grad, grad, value=1); std = state_sum.sqrt().add_(eps)
//   param.addcdiv_(grad, std, value=-clr)
template <class T>
void adagrad_loop(const OptConfig& c, T* FM_RESTRICT p, const T* FM_RESTRICT g,
                  T* FM_RESTRICT sum, index_t n, int64_t step) {
  const bool decay = c.weight_decay != 0.0;
  const T wd = T(c.weight_decay), eps = T(c.eps);
  const double clr = c.lr / (1.0 + (double(step) - 1.0) * c.lr_decay);
  const T neg_clr = T(-clr);
  const int nt = threads_for_update(n, 3.0);
  parallel_for_simd(n, nt, [&](index_t i) {
    T gi = g[i];
    if (decay) gi = gi + wd * p[i];
    const T si = sum[i] + gi * gi;
    sum[i] = si;
    const T sd = std::sqrt(si) + eps;
    p[i] = p[i] + neg_clr * gi / sd;
  });
}

// The loop of cfg's optimizer (cfg validated, step >= 1, count > 0); false
// for an unknown kind.
template <class T>
bool run_optimizer_loops(const OptConfig& cfg, T* p, const T* g, T* const* state, index_t count,
                         int64_t step) {
  switch (cfg.kind) {
    case OptKind::sgd:
      if (cfg.momentum != 0.0)
        sgd_loop<T, true>(cfg, p, g, state[0], count, step);
      else
        sgd_loop<T, false>(cfg, p, g, nullptr, count, step);
      return true;
    case OptKind::adam:
    case OptKind::adamw:
      adam_dispatch<T>(cfg, p, g, state, count, step);
      return true;
    case OptKind::rmsprop: {
      T* sq = state[0];
      T* ga = cfg.centered ? state[1] : nullptr;
      T* buf = cfg.momentum > 0.0 ? state[cfg.centered ? 2 : 1] : nullptr;
      if (cfg.centered) {
        if (buf)
          rmsprop_loop<T, true, true>(cfg, p, g, sq, ga, buf, count);
        else
          rmsprop_loop<T, true, false>(cfg, p, g, sq, ga, nullptr, count);
      } else {
        if (buf)
          rmsprop_loop<T, false, true>(cfg, p, g, sq, nullptr, buf, count);
        else
          rmsprop_loop<T, false, false>(cfg, p, g, sq, nullptr, nullptr, count);
      }
      return true;
    }
    case OptKind::adagrad:
      adagrad_loop<T>(cfg, p, g, state[0], count, step);
      return true;
  }
  return false;
}

}  // namespace
}  // namespace fastmlp
