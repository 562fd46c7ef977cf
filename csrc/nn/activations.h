// Activations and their derivatives, element by element.
// Python twin: fastmlp.reference.activation_forward / activation_backward.
//
// Each derivative reads whichever of z (pre-activation) and y = act(z) gives
// it exactly and cheaply: sigmoid' = y(1-y), tanh' = 1-y^2, elu' = y+1 for
// z <= 0. That is why the network stores both z and y for every layer.
// Definitions are PyTorch's: leaky_relu slope 0.01, elu alpha 1, softplus
// beta 1 (stable form), gelu the exact erf form, relu'(0) = 0.
#pragma once

#include <cmath>

#include "common/restrict.h"
#include "common/types.h"

namespace fastmlp {

template <class T>
FM_ALWAYS_INLINE T sigmoid_scalar(T z) {
  // exp of a non-positive number never overflows.
  if (z >= T(0)) {
    T e = std::exp(-z);
    return T(1) / (T(1) + e);
  }
  T e = std::exp(z);
  return e / (T(1) + e);
}

template <class T>
FM_ALWAYS_INLINE T softplus_scalar(T z) {
  return std::log1p(std::exp(-std::fabs(z))) + (z > T(0) ? z : T(0));
}

template <class T>
FM_ALWAYS_INLINE T act_scalar(Act act, T z) {
  switch (act) {
    case Act::identity: return z;
    case Act::sigmoid: return sigmoid_scalar(z);
    case Act::tanh: return std::tanh(z);
    case Act::relu: return z > T(0) ? z : T(0);
    case Act::leaky_relu: return z > T(0) ? z : T(0.01) * z;
    case Act::elu: return z > T(0) ? z : std::expm1(z);
    case Act::gelu: return T(0.5) * z * std::erfc(-z * T(0.70710678118654752440));
    case Act::softplus: return softplus_scalar(z);
  }
  return z;
}

// act'(z), given z and y = act(z).
template <class T>
FM_ALWAYS_INLINE T act_deriv_scalar(Act act, T z, T y) {
  switch (act) {
    case Act::identity: return T(1);
    case Act::sigmoid: return y * (T(1) - y);
    case Act::tanh: return T(1) - y * y;
    case Act::relu: return z > T(0) ? T(1) : T(0);
    case Act::leaky_relu: return z > T(0) ? T(1) : T(0.01);
    case Act::elu: return z > T(0) ? T(1) : y + T(1);
    case Act::gelu: {
      // d/dz [z Phi(z)] = Phi(z) + z phi(z). Phi via erfc: 1 + erf(x) cancels for x << 0.
      T cdf = T(0.5) * std::erfc(-z * T(0.70710678118654752440));
      T pdf = T(0.39894228040143267794) * std::exp(T(-0.5) * z * z);
      return cdf + z * pdf;
    }
    case Act::softplus: return sigmoid_scalar(z);
  }
  return T(1);
}

// y[i] = act(z[i]) for one contiguous run. y may equal z (in place).
template <class T>
inline void act_forward_run(T* y, const T* z, index_t len, Act act) {
  switch (act) {
    case Act::identity:
      if (y != z)
        for (index_t i = 0; i < len; ++i) y[i] = z[i];
      return;
    case Act::relu:
      for (index_t i = 0; i < len; ++i) y[i] = z[i] > T(0) ? z[i] : T(0);
      return;
    case Act::leaky_relu:
      for (index_t i = 0; i < len; ++i) y[i] = z[i] > T(0) ? z[i] : T(0.01) * z[i];
      return;
    default:
      for (index_t i = 0; i < len; ++i) y[i] = act_scalar(act, z[i]);
      return;
  }
}

// dz[i] = dy[i] * act'(z[i]). dz may equal dy (in place).
template <class T>
inline void act_backward_run(T* dz, const T* dy, const T* z, const T* y, index_t len, Act act) {
  switch (act) {
    case Act::identity:
      if (dz != dy)
        for (index_t i = 0; i < len; ++i) dz[i] = dy[i];
      return;
    case Act::relu:
      for (index_t i = 0; i < len; ++i) dz[i] = z[i] > T(0) ? dy[i] : T(0);
      return;
    case Act::tanh:
      for (index_t i = 0; i < len; ++i) dz[i] = dy[i] * (T(1) - y[i] * y[i]);
      return;
    case Act::sigmoid:
      for (index_t i = 0; i < len; ++i) dz[i] = dy[i] * (y[i] * (T(1) - y[i]));
      return;
    default:
      for (index_t i = 0; i < len; ++i) dz[i] = dy[i] * act_deriv_scalar(act, z[i], y[i]);
      return;
  }
}

// Whole-array forms (rows x cols, contiguous), OpenMP over rows.
template <class T>
void activation_forward(T* y, const T* z, index_t rows, index_t cols, Act act);
template <class T>
void activation_backward(T* dz, const T* dy, const T* z, const T* y, index_t rows, index_t cols,
                         Act act);

}  // namespace fastmlp
