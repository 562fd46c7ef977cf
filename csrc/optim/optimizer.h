// Optimizers as torch.optim defines them, each one fused pass over the flat
// parameter buffer (params, grads and the state buffers share its layout).
// Python twins: fastmlp.reference.{sgd,adam,adamw,rmsprop,adagrad}_step and
// the classes of fastmlp.optim.
//
// Update rules (g = grad; t = this update's 1-based step number):
//   sgd      g += wd p; buf = g (t = 1) or mu buf + (1 - dampening) g;
//            g = g + mu buf (nesterov) or buf (mu > 0); p -= lr g
//   adam     g += wd p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
//            p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//            (amsgrad: vmax = max(vmax, v) replaces v in the denominator)
//   adamw    p *= 1 - lr wd, then adam with wd = 0
//   rmsprop  g += wd p; v = alpha v + (1 - alpha) g^2;
//            centered: ga = alpha ga + (1 - alpha) g, avg = sqrt(v - ga^2) + eps
//            else avg = sqrt(v) + eps;
//            mu > 0: buf = mu buf + g / avg, p -= lr buf;  else p -= lr g / avg
//   adagrad  clr = lr / (1 + (t - 1) lr_decay); g += wd p; s += g^2;
//            p -= clr g / (sqrt(s) + eps)       (s starts at initial_accumulator)
//
// One deliberate difference from torch: state values (momentum buffers,
// moments) below the smallest normal number are stored as 0, because
// subnormal arithmetic is ~100x slower on x86 and decaying state reaches it
// (see flush_tiny in optimizer.cpp); parameters are unaffected in practice.
#pragma once

#include <cstdint>

#include "common/types.h"

namespace fastmlp {

enum class OptKind : int { sgd = 0, adam = 1, adamw = 2, rmsprop = 3, adagrad = 4 };
constexpr int kNumOptKinds = 5;

// The hyper-parameters, each written once here: FASTMLP_OPT_FIELDS(X) calls
// X(type, name, default, doc) per field, and the struct, the Python binding
// (_core.OptConfig: keyword constructor, attributes, fields(), as_dict()) and
// the messages are all generated from it. In double whatever the parameter
// type (converted to T where the update is computed, as torch does for its
// float tensors). Python's twin of the list: fastmlp.optim.CORE_FIELDS (a
// test checks that the two agree).
#define FASTMLP_OPT_FIELDS(X)                                                              \
  X(double, lr, 0.01, "learning rate")                                                     \
  X(double, weight_decay, 0.0, "L2 decay: coupled (sgd, adam, rmsprop, adagrad), decoupled (adamw)") \
  X(double, momentum, 0.0, "sgd, rmsprop")                                                 \
  X(double, dampening, 0.0, "sgd")                                                         \
  X(bool, nesterov, false, "sgd")                                                          \
  X(double, beta1, 0.9, "adam, adamw")                                                     \
  X(double, beta2, 0.999, "adam, adamw")                                                   \
  X(bool, amsgrad, false, "adam, adamw: denominator from the max over steps of v")         \
  X(double, eps, 1e-8, "adam, adamw, rmsprop, adagrad (defaults differ per kind)")         \
  X(double, alpha, 0.99, "rmsprop")                                                        \
  X(bool, centered, false, "rmsprop")                                                      \
  X(double, lr_decay, 0.0, "adagrad")                                                      \
  X(double, initial_accumulator, 0.0, "adagrad: the sum's starting value")

struct OptConfig {
  OptKind kind = OptKind::sgd;
#define FASTMLP_DECLARE_FIELD(type, name, init, doc) type name = init;
  FASTMLP_OPT_FIELDS(FASTMLP_DECLARE_FIELD)
#undef FASTMLP_DECLARE_FIELD
};

// Checks the values (finite, in range, e.g. 0 <= beta < 1, nesterov needs
// momentum > 0 and dampening 0); throws std::invalid_argument naming the field.
void validate(const OptConfig& cfg);

// How many state buffers of `count` elements the kind needs (0..3).
int optimizer_state_count(const OptConfig& cfg);

// Sets the state buffers to their starting values (zeros; adagrad's sum to
// initial_accumulator).
template <class T>
void optimizer_init_state(const OptConfig& cfg, T* const* state, index_t count);

// One update of p[0, count) from g. state[i] (i < optimizer_state_count) each
// point to `count` elements; step is this update's 1-based number. Element-wise,
// so the result is the same for any thread count.
template <class T>
void optimizer_step(const OptConfig& cfg, T* p, const T* g, T* const* state, index_t count,
                    int64_t step);

}  // namespace fastmlp
