// What happens to the gradient between backward and the optimizer step:
// L1/L2 penalties, per-block squared norms, clipping by value and by norm.
// Python twins: fastmlp.reference.l1_l2_penalty / l1_l2_gradient /
// clip_grad_value / clip_grad_norm.
//
// Sums run over fixed chunks of kChunk elements whose partial sums (double)
// are added in chunk order, so a result never depends on the thread count.
#pragma once

#include "common/types.h"

namespace fastmlp {

// Returns l1 * sum|w| + l2 * sum w^2 and adds its gradient
// l1 * sign(w) + 2 * l2 * w (sign(0) = 0) to gw. w, gw: (count).
template <class T>
double add_penalty(const T* w, T* gw, index_t count, double l1, double l2);

// sum of g^2 over (count), in double.
template <class T>
double sum_squares(const T* g, index_t count);

// g = clamp(g, -v, v)  (torch.nn.utils.clip_grad_value_)
template <class T>
void clip_by_value(T* g, index_t count, double v);

// g *= s
template <class T>
void scale_in_place(T* g, index_t count, double s);

}  // namespace fastmlp
