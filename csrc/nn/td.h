// Triple-double arithmetic (a value is x0 + x1 + x2, about 150 significant
// bits) for the float64 residuals of the losses' gradients that double-double
// (nn/dd.h) leaves too few digits of: sigmoid(z) - t, exp(z) - t and
// p_j t_sum - t_j at an input nearest to a zero, where the exact residual can
// be 2^-60 .. 2^-110 of its cancelling term. dd's ~2^-106 relative error of
// the exponential is then several ulp of the residual (up to ~300 were
// measured); ~2^-150 keeps the residual's 53 bits with 2^-40 to spare down to
// residuals of 2^-110 of the term, about as close as the exponential of a
// double comes to a double (the smallest a search of 12000 points per loss
// found were ~2^-73, tests/test_extremes.py HARD_F64).
// nn/losses.cpp calls this only for the elements whose double-double residual
// is below kTightF64 of its term: a cold path, written for clarity and not for
// speed. Python twin: the _td_* helpers of fastmlp.reference.
//
// The building block is an exact expansion (Shewchuk's Grow-Expansion, without
// zero elimination, so that every element takes the same steps and the
// vectorized Python twin matches it): a list of doubles, smallest first,
// whose unrounded sum is exactly the sum of every double added to it, since
// each step is an error-free two_sum. Products enter it through two_prod
// (std::fma, exact), so a b - c d of triple-doubles is formed exactly and only
// then rounded: the cancellation that the residuals are made of costs nothing.
// A triple-double is read back from an expansion by taking its rounded sum
// and subtracting that, exactly, four times (to_td): each step leaves a
// remainder below ~2^-50 of the previous one.
#pragma once

#include <cmath>

#include "nn/dd.h"

namespace fastmlp {
namespace td {

struct TD {
  double x0, x1, x2;
};

// An exact sum of at most kCap doubles, counting the three subtractions of
// to_td; the most any caller adds is 30 (a cross-entropy numerator, 24
// products' parts, and div's 6).
struct Expansion {
  static constexpr int kCap = 40;
  double h[kCap] = {};
  int n = 0;

  // Grow-Expansion: h + b, exactly; h stays non-overlapping, smallest first.
  void add(double b) {
    double q = b;
    for (int i = 0; i < n; ++i) {
      const dd::DD s = dd::two_sum(q, h[i]);
      q = s.hi;
      h[i] = s.lo;
    }
    h[n++] = q;
  }
  void add(TD a) {
    add(a.x0);
    add(a.x1);
    add(a.x2);
  }
  // a b, exactly (barring underflow of the rounding errors).
  void add_prod(double a, double b) {
    const dd::DD p = dd::two_prod(a, b);
    add(p.hi);
    add(p.lo);
  }
  void add_prod(double a, TD b) {
    add_prod(a, b.x0);
    add_prod(a, b.x1);
    add_prod(a, b.x2);
  }
  void add_prod(TD a, TD b) {
    add_prod(a.x0, b);
    add_prod(a.x1, b);
    add_prod(a.x2, b);
  }
  // The rounded sum, smallest first: the components do not overlap, so this
  // is within a few ulp of the exact sum.
  double est() const {
    double s = 0.0;
    for (int i = 0; i < n; ++i) s += h[i];
    return s;
  }
  // The sum as a triple-double: three times, the rounded sum of what is left,
  // subtracted exactly (from a copy); a fourth remainder is folded into the
  // last part.
  TD to_td() const {
    Expansion rest = *this;
    double x[4];
    for (int i = 0; i < 4; ++i) {
      x[i] = rest.est();
      if (i < 3) rest.add(-x[i]);
    }
    return {x[0], x[1], x[2] + x[3]};
  }
  // The double nearest the sum (within a hair of half an ulp).
  double nearest() const {
    const TD t = to_td();
    return t.x0 + (t.x1 + t.x2);
  }
};

inline double nearest(TD a) {
  Expansion e;
  e.add(a);
  return e.nearest();
}

// The sum of num divided by d, within a hair of half an ulp: a first quotient
// q (~1.5 ulp: three roundings), then the remainder num - q d, exact, divided
// as a correction.
inline double div(Expansion num, TD d) {
  const double dn = nearest(d);
  const double q = num.nearest() / dn;
  num.add_prod(-q, d);
  return q + num.nearest() / dn;
}

inline TD from(double a) { return {a, 0.0, 0.0}; }

inline TD ldexp(TD a, int k) {
  return {std::ldexp(a.x0, k), std::ldexp(a.x1, k), std::ldexp(a.x2, k)};
}

inline TD add(TD a, TD b) {
  Expansion e;
  e.add(a);
  e.add(b);
  return e.to_td();
}

// a b + c: the products that matter exactly, the three next ones (2^-100 of
// a0 b0 and below) rounded, a2 b2 (2^-200) dropped.
inline TD mul_add(TD a, TD b, TD c) {
  Expansion e;
  e.add_prod(a.x0, b.x0);
  e.add_prod(a.x0, b.x1);
  e.add_prod(a.x1, b.x0);
  e.add(a.x0 * b.x2);
  e.add(a.x1 * b.x1);
  e.add(a.x2 * b.x0);
  e.add(a.x1 * b.x2 + a.x2 * b.x1);
  e.add(c);
  return e.to_td();
}

// e^(x + xlo) = 2^k (1 + m): returns m and k, for |x| <= 746. The reduction
// x - k ln2 is exact up to ln2's four parts (2^-212 of ln2, 2^-201 after the
// multiple); then r / 2^8 (|r / 2^8| < 2^-9.5), the Taylor series of e^r - 1
// through r^15 (the first term left out is below 2^-186 of r) and eight
// squarings in the form m -> 2m + m^2, which keeps m's relative accuracy when
// it is tiny. Measured against mpmath (the Python twin, which takes the same
// steps, 6000 arguments over [-746, 709] and down to 1e-30): the relative
// error of m and of 1 + m below 2^-158.
inline TD expm1_reduced(double x, double xlo, int* k) {
  constexpr double kLn2[] = {0x1.62e42fefa39efp-1, 0x1.abc9e3b39803fp-56,
                             0x1.7b57a079a1934p-111, -0x1.ace93a4ebe5d1p-165};
  constexpr int kHalvings = 8;
  // 1/n!, n = 15 .. 2, as triple-doubles (from mpmath).
  static constexpr TD kInvFact[] = {
      {0x1.ae7f3e733b81fp-41, 0x1.1d8656b0ee8cbp-97, -0x1.6e142a138f825p-157},
      {0x1.93974a8c07c9dp-37, 0x1.05d6f8a2efd1fp-92, 0x1.3aa3346236a5dp-147},
      {0x1.6124613a86d09p-33, 0x1.f28e0cc748ebep-87, -0x1.7b2c4c8a840bcp-141},
      {0x1.1eed8eff8d898p-29, -0x1.2aec959e14c06p-83, 0x1.2fb0073dd2d9ep-139},
      {0x1.ae64567f544e4p-26, -0x1.c062e06d1f209p-80, 0x1.c7880adcbc46ep-136},
      {0x1.27e4fb7789f5cp-22, 0x1.cbbc05b4fa99ap-76, -0x1.c6d278883e8f5p-132},
      {0x1.71de3a556c734p-19, -0x1.c154f8ddc6c00p-73, 0x1.71de3a556c734p-127},
      {0x1.a01a01a01a01ap-16, 0x1.a01a01a01a01ap-76, 0x1.a01a01a01a01ap-136},
      {0x1.a01a01a01a01ap-13, 0x1.a01a01a01a01ap-73, 0x1.a01a01a01a01ap-133},
      {0x1.6c16c16c16c17p-10, -0x1.f49f49f49f49fp-65, -0x1.27d27d27d27d2p-119},
      {0x1.1111111111111p-7, 0x1.1111111111111p-63, 0x1.1111111111111p-119},
      {0x1.5555555555555p-5, 0x1.5555555555555p-59, 0x1.5555555555555p-113},
      {0x1.5555555555555p-3, 0x1.5555555555555p-57, 0x1.5555555555555p-111},
      {0x1.0000000000000p-1, 0.0, 0.0},
  };
  const double kd = std::nearbyint(x * 1.4426950408889634);
  *k = int(kd);
  Expansion e;
  e.add(x);
  e.add(xlo);
  for (double l : kLn2) e.add_prod(-kd, l);
  const TD r = ldexp(e.to_td(), -kHalvings);
  TD q = kInvFact[0];
  for (int i = 1; i < int(sizeof kInvFact / sizeof kInvFact[0]); ++i)
    q = mul_add(q, r, kInvFact[i]);
  q = mul_add(q, r, from(1.0));
  TD m = mul_add(q, r, from(0.0));
  for (int i = 0; i < kHalvings; ++i) m = mul_add(m, m, {2.0 * m.x0, 2.0 * m.x1, 2.0 * m.x2});
  return m;
}

// e^(x + xlo), x <= 0, as 2^k (1 + m) in a triple-double; 0 below -746 (under
// half the smallest subnormal). Its low parts go subnormal below ~2^-860,
// where no residual that uses it is above the tests' floor.
inline TD exp_neg(double x, double xlo) {
  if (!(x >= -746.0)) return from(0.0);
  int k;
  const TD m = expm1_reduced(x, xlo, &k);
  Expansion e;
  e.add(1.0);
  e.add(m);
  return ldexp(e.to_td(), k);
}

// exp(z) - t as dd::exp_minus, with t 2^-k (exact) subtracted from 1 + m in
// one exact sum.
inline double exp_minus(double z, double t) {
  int k;
  const TD m = expm1_reduced(z, 0.0, &k);
  Expansion e;
  e.add(1.0);
  e.add(-std::ldexp(t, -k));
  e.add(m);
  return std::ldexp(e.nearest(), k);
}

// exp(z) - t z, the Poisson loss of one element, where its two terms nearly
// cancel (z near log t with t near e, where the loss t (1 - log t) + ... can
// be ~1e-16 of its terms): 2^k ((1 + m) - t z 2^-k), t z exact as two_prod,
// in one exact sum. z <= 709.8; t z 2^-k stays near 1 on the callers' path,
// so its scaling is exact.
inline double exp_minus_prod(double z, double t) {
  int k;
  const TD m = expm1_reduced(z, 0.0, &k);
  const dd::DD p = dd::two_prod(t, z);
  Expansion e;
  e.add(1.0);
  e.add(-std::ldexp(p.hi, -k));
  e.add(-std::ldexp(p.lo, -k));
  e.add(m);
  return std::ldexp(e.nearest(), k);
}

// sigmoid(z) - t, 0 < t < 1, as dd::sigmoid_minus, with E = e^-|z| = 2^k (1 + m)
// and the numerator scaled by 2^-k (so that t 2^-k and (1 - t) 2^-k, exact,
// stay near 1 and nothing underflows):
//   z > 0:  ((1 - t) 2^-k - t (1 + m)) 2^k / (1 + E)
//   z <= 0: ((1 - t) (1 + m) - t 2^-k) 2^k / (1 + E)
// The numerator carries all the cancellation; the division (div) rounds once.
inline double sigmoid_minus(double z, double t) {
  if (!(std::fabs(z) <= 746.0)) return z > 0.0 ? 1.0 - t : -t;  // E underflows
  int k;
  const TD m = expm1_reduced(-std::fabs(z), 0.0, &k);  // k <= 0
  const dd::DD omt = dd::two_sum(1.0, -t);
  Expansion e;
  if (z > 0.0) {
    e.add(std::ldexp(omt.hi, -k));
    e.add(std::ldexp(omt.lo, -k));
    e.add(-t);
    e.add_prod(-t, m);
  } else {
    e.add(omt.hi);
    e.add(omt.lo);
    e.add_prod(omt.hi, m);
    e.add_prod(omt.lo, m);
    e.add(-std::ldexp(t, -k));
  }
  Expansion den;  // 1 + E, its low parts subnormal (and immaterial) only for E < 2^-900
  den.add(1.0);
  den.add(std::ldexp(1.0, k));
  den.add(ldexp(m, k));
  return std::ldexp(div(e, den.to_td()), k);
}

}  // namespace td
}  // namespace fastmlp
