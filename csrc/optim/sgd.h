// Stochastic gradient descent, as torch.optim.SGD defines it (dampening 0),
// in one fused pass over the flat parameter buffer.
// Python twin: fastmlp.reference.sgd_step.
//
//   g  = grad + weight_decay * p                      (coupled L2 decay)
//   buf = g on the first step, momentum * buf + g after
//   g  = g + momentum * buf  (Nesterov)  or  buf  (classical momentum)
//   p -= lr * g
#pragma once

#include "common/types.h"

namespace fastmlp {

template <class T>
struct SgdConfig {
  T lr = T(0.01);
  T momentum = T(0);
  bool nesterov = false;
  T weight_decay = T(0);
};

// p, g, buf: (count). buf is read and written only when momentum != 0;
// first_step says whether buf holds anything yet.
template <class T>
void sgd_step(T* p, const T* g, T* buf, index_t count, const SgdConfig<T>& cfg, bool first_step);

}  // namespace fastmlp
