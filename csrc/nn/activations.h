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
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/restrict.h"
#include "common/types.h"

namespace fastmlp {

// float32 elementary functions written without branches or calls, so that
// the loops over a row vectorize; float64 keeps the C library's functions
// (the exact path used for gradient checks). They are `static`: the ISA units
// (csrc/gemm/ukr_avx*.cpp) compile their own copies at their own width, and
// internal linkage keeps those copies from replacing the baseline ones.
//
// exp_f32: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then a degree-6
// polynomial for e^r (the classic single-precision minimax coefficients) and
// 2^n from the exponent bits. Relative error below 2 ulp over [-87, 88];
// arguments outside are clamped (e^-87 ~ 1.6e-38, e^88 ~ 1.7e38), which only
// the saturated ends of sigmoid and tanh ever reach.
static FM_ALWAYS_INLINE float exp_f32(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  float r = x - n * 0.693359375f;       // ln2, high part (exact in a few bits)
  r = r - n * -2.12194440e-4f;          // ln2 - high part
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return er * scale;
}

// tanh_f32: the odd Taylor polynomial through z^13 for |z| < 0.4 (truncation
// below 5e-9 relative), 1 - 2 / (e^{2|z|} + 1) above (absolute error about one
// ulp of 1, i.e. a few ulp of the result near 0.4 and less beyond), sign
// restored. Clamping |z| at 44 keeps e^{2|z|} finite; tanh is 1 there in float.
static FM_ALWAYS_INLINE float tanh_f32(float z) {
  const float a0 = std::fabs(z);
  const float a = a0 > 44.0f ? 44.0f : a0;
  const float s = a * a;
  float p = 21844.0f / 6081075.0f;
  p = p * s - 1382.0f / 155925.0f;
  p = p * s + 62.0f / 2835.0f;
  p = p * s - 17.0f / 315.0f;
  p = p * s + 2.0f / 15.0f;
  p = p * s - 1.0f / 3.0f;
  const float small = a + a * s * p;
  const float big = 1.0f - 2.0f / (exp_f32(2.0f * a) + 1.0f);
  const float t = a < 0.4f ? small : big;
  return std::copysign(t, z);
}

// sigmoid_f32: e = e^{-|z|} never overflows; 1/(1+e) for z >= 0, e/(1+e) below.
static FM_ALWAYS_INLINE float sigmoid_f32(float z) {
  const float e = exp_f32(-std::fabs(z));
  const float inv = 1.0f / (1.0f + e);
  return z >= 0.0f ? inv : e * inv;
}

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
  if constexpr (std::is_same_v<T, float>) {
    if (act == Act::tanh) {
      for (index_t i = 0; i < len; ++i) y[i] = tanh_f32(z[i]);
      return;
    }
    if (act == Act::sigmoid) {
      for (index_t i = 0; i < len; ++i) y[i] = sigmoid_f32(z[i]);
      return;
    }
  }
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
      for (index_t i = 0; i < len; ++i) {
        const T d = dy[i];  // read unconditionally, so the select vectorizes
        dz[i] = z[i] > T(0) ? d : T(0);
      }
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
