// Activations and their derivatives, element by element.
// Python twin: fastmlp.reference.activation_forward / activation_backward.
//
// Every derivative is computed from z (pre-activation), not from y = act(z):
// y(1-y), 1-y^2 and y+1 lose all of their digits once y rounds to 1 (or -1),
// while the exact sigmoid' = e/(1+e)^2 (e = e^-|z|), tanh' = 4e/(1+e)^2
// (e = e^-2|z|) and elu' = e^z stay far above the dtype's smallest normal.
// Results are within a few ulp of the exact value over the whole range
// (tests/test_extremes.py). Definitions are PyTorch's: leaky_relu slope 0.01,
// elu alpha 1, softplus beta 1 (stable form), gelu the exact erf form,
// relu'(0) = 0.
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
// (the exact path used for gradient checks) but for exp_neg_f64 below. They
// are `static`: the ISA units (csrc/gemm/ukr_avx*.cpp) compile their own
// copies at their own width, and internal linkage keeps those copies from
// replacing the baseline ones.
//
// exp_f32: Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then a degree-6
// polynomial for e^r (the classic single-precision minimax coefficients) and
// 2^n from the exponent bits. Relative error below 2 ulp over [-87, 88];
// arguments outside are clamped (e^-87 ~ 1.6e-38, e^88 ~ 1.7e38), which only
// the saturated ends of sigmoid and tanh ever reach.
//
// exp_f32_lo(x, lo): e^(x + lo) for a tail lo of at most half an ulp of x
// (the rounding error of a difference x = fl(a - b), exact by TwoSum). lo
// joins the reduced argument r, so that e^(a - b) is not off by the |x|/2
// ulp that rounding x costs (e.g. 16 ulp at x = -33); exp_f32 is the same
// with lo = 0 (kept apart so that its callers pay no extra add).
template <bool Lo>
static FM_ALWAYS_INLINE float exp_f32_impl(float x, float lo) {
  if constexpr (Lo) lo = x < -87.0f ? 0.0f : lo;  // a clamped x drops its tail (any size)
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + shifter;
  const float n = t - shifter;
  float r = x - n * 0.693359375f;       // ln2, high part (exact in a few bits)
  if constexpr (Lo) r = r + lo;
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

static FM_ALWAYS_INLINE float exp_f32(float x) { return exp_f32_impl<false>(x, 0.0f); }
static FM_ALWAYS_INLINE float exp_f32_lo(float x, float lo) { return exp_f32_impl<true>(x, lo); }

// exp_neg_f64: e^x for x <= 0 in double, branch-free so that the float64
// derivative loops vectorize (the C library's exp is a call per element,
// ~15x slower than the y-based forms it replaced). Cody-Waite reduction
// x = n ln2 + r, |r| <= ln2/2, with fdlibm's split of ln2 (n ln2_hi exact),
// the Taylor series of e^r - 1 through r^13 (truncation below 0.05 ulp),
// then 2^n in two normal factors, 2^ceil(n/2) and 2^floor(n/2), so that a
// subnormal result is rounded once. Within about 1 ulp; x < -745.2 gives 0.
// n is read from the bits of x log2(e) + 1.5 * 2^52, so that no
// double-to-integer conversion (which AVX2 lacks) is needed.
// exp_neg_f64_lo(x, lo) is e^(x + lo) as exp_f32_lo above.
template <bool Lo>
static FM_ALWAYS_INLINE double exp_neg_f64_impl(double x, double lo) {
  if constexpr (Lo) lo = x < -745.2 ? 0.0 : lo;  // a clamped x drops its tail (any size)
  x = x < -745.2 ? -745.2 : x;
  const double shifter = 6755399441055744.0;  // 1.5 * 2^52
  const double t = x * 1.4426950408889634 + shifter;
  const double n = t - shifter;
  // n ln2_hi is exact (ln2_hi has 32 trailing zero bits, |n| <= 1076) and so
  // is the difference (Sterbenz); n ln2_lo is below 2^-21 of r's scale. No
  // fma: the baseline unit is compiled without it, where it is a call.
  double r = x - n * 6.93147180369123816490e-01;
  if constexpr (Lo) r = r + lo;
  r = r - n * 1.90821492927058770002e-10;
  double q = 1.6059043836821613e-10;
  q = q * r + 2.08767569878681e-09;
  q = q * r + 2.505210838544172e-08;
  q = q * r + 2.755731922398589e-07;
  q = q * r + 2.7557319223985893e-06;
  q = q * r + 2.48015873015873e-05;
  q = q * r + 0.0001984126984126984;
  q = q * r + 0.001388888888888889;
  q = q * r + 0.008333333333333333;
  q = q * r + 0.041666666666666664;
  q = q * r + 0.16666666666666666;
  q = q * r + 0.5;
  const double er = 1.0 + (r + r * r * q);
  int64_t tb;
  std::memcpy(&tb, &t, sizeof tb);
  const int64_t mn = 0x4338000000000000LL - tb;  // -n >= 0
  const int64_t h1 = mn >> 1, h2 = mn - h1;       // -n = h1 + h2, each <= 538
  const int64_t b1 = (1023 - h1) << 52, b2 = (1023 - h2) << 52;
  double s1, s2;
  std::memcpy(&s1, &b1, sizeof s1);
  std::memcpy(&s2, &b2, sizeof s2);
  return er * s1 * s2;
}

static FM_ALWAYS_INLINE double exp_neg_f64(double x) { return exp_neg_f64_impl<false>(x, 0.0); }
static FM_ALWAYS_INLINE double exp_neg_f64_lo(double x, double lo) {
  return exp_neg_f64_impl<true>(x, lo);
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

// e^x for x <= 0 in either type, branch-free so that loops of it vectorize:
// exp_f32 in float32, exp_neg_f64 in float64. The derivatives below, the
// ISA units' backward loops and the softmax (nn/losses.cpp) all take it.
template <class T>
static FM_ALWAYS_INLINE T exp_neg(T x) {
  if constexpr (std::is_same_v<T, float>)
    return exp_f32(x);
  else
    return exp_neg_f64(x);
}

// e^(x + lo), x <= 0, lo the tail of an exact difference (see exp_f32_lo).
template <class T>
static FM_ALWAYS_INLINE T exp_neg_lo(T x, T lo) {
  if constexpr (std::is_same_v<T, float>)
    return exp_f32_lo(x, lo);
  else
    return exp_neg_f64_lo(x, lo);
}

// sigmoid'(z) = s(z) s(-z) = e / (1 + e)^2 with e = e^{-|z|} (even in z):
// no subtraction, so full relative accuracy where y(1 - y) would give 0.
template <class T>
static FM_ALWAYS_INLINE T sigmoid_deriv_scalar(T z) {
  const T e = exp_neg(-std::fabs(z));
  const T s = T(1) / (T(1) + e);
  return e * s * s;
}

// tanh'(z) = 1 - tanh^2 = (1 - t)(1 + t) = 4e / (1 + e)^2 with e = e^{-2|z|},
// since 1 - |t| = 2e/(1+e) and 1 + |t| = 2/(1+e). exp_f32's clamp only bites
// where the exact value is below 1e-37.
template <class T>
static FM_ALWAYS_INLINE T tanh_deriv_scalar(T z) {
  const T e = exp_neg(T(-2) * std::fabs(z));
  const T s = T(1) / (T(1) + e);
  return T(4) * e * s * s;
}

// GELU in double, exact in both tails (the float32 path rounds these once).
// static, as the float helpers above: ISA units keep their own copies.
//
// Phi(z) = erfc(x) / 2 with x = -z / sqrt 2. For z << 0, erfc(x) ~ e^{-x^2},
// so a relative error d in x becomes 2 x^2 d in the result: rounding x alone
// would cost hundreds of ulps near z = -20. x is therefore carried as
// x_hi + x_lo (1/sqrt 2 split in two doubles, the product's error by fma),
// and erfc(x_hi + x_lo) = erfc(x_hi) - x_lo (2/sqrt pi) e^{-x_hi^2}, the
// first-order term being exact to O(x_lo^2).
static inline double gelu_cdf_f64(double z) {
  constexpr double kRsqrt2Hi = 0.7071067811865476;     // 1/sqrt 2, rounded
  constexpr double kRsqrt2Lo = -4.833646656726457e-17; // 1/sqrt 2 - kRsqrt2Hi
  constexpr double k2RsqrtPi = 1.1283791670955126;     // 2/sqrt pi
  const double x = -z * kRsqrt2Hi;
  const double e = std::erfc(x);
  if (!(std::fabs(z) < 40.0)) return 0.5 * e;  // the correction is 0 (or NaN for inf)
  const double x_lo = std::fma(-z, kRsqrt2Hi, -x) - z * kRsqrt2Lo;
  return 0.5 * (e - x_lo * k2RsqrtPi * std::exp(-x * x));
}

// phi(z) = e^{-z^2/2} / sqrt(2 pi). z^2 = p + q exactly (fma), and
// e^{-(p+q)/2} = e^{-p/2} (1 - q/2) to O(q^2): without the q term, the
// rounding of z^2 costs z^2/2 * 2^-53 relative, ~200 ulps at z = 20.
static inline double normal_pdf_f64(double z) {
  constexpr double kRsqrt2Pi = 0.3989422804014327;  // 1/sqrt(2 pi)
  if (!(std::fabs(z) < 40.0)) return 0.0;           // below 1e-347 (and NaN stays out)
  const double p = z * z;
  const double q = std::fma(z, z, -p);
  return kRsqrt2Pi * std::exp(-0.5 * p) * (1.0 - 0.5 * q);
}

// Below z = -40 the value is under 1e-347: its limit -0 (z * Phi(z) would be
// NaN at -inf).
static inline double gelu_f64(double z) { return z < -40.0 ? -0.0 : z * gelu_cdf_f64(z); }

// gelu'(z) = Phi(z) + z phi(z). It has one root, z0 = -0.75179152469356...,
// where the two terms cancel; within 0.35 of it the sum is replaced by its
// Taylor series about z0 (coefficients g^(k)(z0)/k!, from mpmath at 50
// digits; the degree-21 truncation is below 1e-20 there). d = z - z0 is
// formed as (z - z0_hi) - z0_lo, the first difference exact by Sterbenz.
static inline double gelu_deriv_f64(double z) {
  constexpr double kZ0Hi = -0.7517915246935645, kZ0Lo = 1.4956759177009883e-17;
  if (std::fabs(z - kZ0Hi) < 0.35) {
    static constexpr double c[21] = {
        0.43149399231404692,     0.38828498299055200,     -0.018199676398671087,
        -0.11400823329722171,    -0.014771522148244338,   0.019421679838189066,
        0.0045392283791254156,   -0.0022395380680734972,  -0.00074482683867468162,
        0.00018633974623233513,  8.6159478611165716e-05,  -1.1214380188426641e-05,
        -7.7484613070037191e-06, 4.3284506257392275e-07,  5.7027649792421072e-07,
        -1.6044265494246428e-09, -3.5459866461783866e-08, -1.3969420864262021e-09,
        1.9031984050131398e-09,  1.4506418938779425e-10,  -8.9500376927262555e-11};
    const double d = (z - kZ0Hi) - kZ0Lo;
    double acc = c[20];
    for (int k = 19; k >= 0; --k) acc = acc * d + c[k];
    return acc * d;
  }
  // Past |z| = 40 the limits 1 and 0 (+-inf included: z * phi would be NaN).
  if (!(std::fabs(z) < 40.0)) return z > 0.0 ? 1.0 : (z < 0.0 ? 0.0 : z);
  return gelu_cdf_f64(z) + z * normal_pdf_f64(z);
}

// GELU and its derivative for float32: the same formulas in double without
// the tail corrections above, which are below 1e-13 relative where a float
// result is above 1e-38 (|z| < 14); near gelu's root the double sum's
// absolute error (~1e-17) is far below a float ulp of the result at the
// nearest floats to z0. One rounding to float at the end.
static inline float gelu_f32(float zf) {
  const double z = zf;
  if (z < -40.0) return -0.0f;  // as gelu_f64
  return float(0.5 * z * std::erfc(-z * 0.7071067811865476));
}

static inline float gelu_deriv_f32(float zf) {
  const double z = zf;
  if (!(std::fabs(z) < 40.0)) return z > 0.0 ? 1.0f : (z < 0.0 ? 0.0f : zf);
  const double cdf = 0.5 * std::erfc(-z * 0.7071067811865476);
  return float(cdf + z * (0.3989422804014327 * std::exp(-0.5 * z * z)));
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
    case Act::gelu:
      if constexpr (std::is_same_v<T, float>)
        return gelu_f32(z);
      else
        return gelu_f64(z);
    case Act::softplus: return softplus_scalar(z);
  }
  return z;
}

// act'(z). y = act(z) is accepted for the callers' sake but no longer read.
template <class T>
FM_ALWAYS_INLINE T act_deriv_scalar(Act act, T z, T /*y*/) {
  switch (act) {
    case Act::identity: return T(1);
    case Act::sigmoid: return sigmoid_deriv_scalar(z);
    case Act::tanh: return tanh_deriv_scalar(z);
    case Act::relu: return z > T(0) ? T(1) : T(0);
    case Act::leaky_relu: return z > T(0) ? T(1) : T(0.01);
    case Act::elu: return z > T(0) ? T(1) : std::exp(z);  // y + 1 is 0 once y rounds to -1
    case Act::gelu:
      if constexpr (std::is_same_v<T, float>)
        return gelu_deriv_f32(z);
      else
        return gelu_deriv_f64(z);
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
#pragma omp simd
      for (index_t i = 0; i < len; ++i) dz[i] = dy[i] * tanh_deriv_scalar(z[i]);
      return;
    case Act::sigmoid:
#pragma omp simd
      for (index_t i = 0; i < len; ++i) dz[i] = dy[i] * sigmoid_deriv_scalar(z[i]);
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
