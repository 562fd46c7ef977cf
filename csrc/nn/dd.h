// Double-double arithmetic (a value is hi + lo, |lo| <= ulp(hi) / 2, about
// 106 significant bits) for the residuals of the losses' gradients that
// cancel: softmax(z) t_sum - t, sigmoid(z) - t and exp(z) - t vanish at
// data-dependent points (z = logit t, z = log t, softmax(z) = t / t_sum),
// where the exact value can be far below the rounding of the exponential
// itself. There a result within a few ulp needs e^z to well beyond double's
// 53 bits, so it is computed here, in the branch that the loss loops take
// only near such a zero (nn/losses.cpp, may_cancel); elsewhere it is never called.
// Python twin: the _dd_* helpers of fastmlp.reference.
//
// Error: expm1_reduced's relative error is below 2^-106 (measured against
// mpmath), prod_diff rounds relative to the difference. A residual is then
// within the dtype's few ulp wherever it is at least ~2^-56 of its cancelling
// term (t, 1 - t, t_j). float64 residuals can be far smaller at an input
// nearest to a zero (2^-60 .. 2^-73 of t in tests/test_extremes.py HARD_F64,
// which double-double misses by up to 10^4 ulp): the callers send those below
// 2^-48 of their term on to triple-double (nn/td.h, kTightF64 in
// nn/losses.cpp). Double alone is not enough for float32 either:
// float32 (z, t) pairs exist whose residual is 2^-45 .. 2^-59 of t (near
// t = 1/2 with small z, near t = 1 for exp), which double misses by up to 10^7
// ulp and double-double meets with room to spare (8 ulp of such a residual is
// still ~2^-80 of t).
//
// std::fma is exact everywhere (a hardware instruction where the unit is built
// with FMA, glibc's exact software fma otherwise); no -ffast-math is used, so
// the error-free transformations below are not reassociated away.
#pragma once

#include <cmath>

namespace fastmlp {
namespace dd {

struct DD {
  double hi, lo;
};

// a + b = s + e exactly (Knuth), any magnitudes.
inline DD two_sum(double a, double b) {
  const double s = a + b;
  const double bb = s - a;
  return {s, (a - (s - bb)) + (b - bb)};
}

// a + b = s + e exactly, for |a| >= |b| (or a == 0).
inline DD fast_two_sum(double a, double b) {
  const double s = a + b;
  return {s, b - (s - a)};
}

// a * b = p + e exactly (barring under/overflow).
inline DD two_prod(double a, double b) {
  const double p = a * b;
  return {p, std::fma(a, b, -p)};
}

// a * b = p + e exactly by Dekker's split, for |a|, |b| < 2^500 (the split
// overflows beyond): no fma, which the baseline unit (built without FMA)
// calls through the PLT. expm1_reduced's operands are all small.
inline DD two_prod_small(double a, double b) {
  constexpr double kSplit = 134217729.0;  // 2^27 + 1
  const double p = a * b;
  const double ta = kSplit * a, ah = ta - (ta - a), al = a - ah;
  const double tb = kSplit * b, bh = tb - (tb - b), bl = b - bh;
  return {p, ((ah * bh - p) + ah * bl + al * bh) + al * bl};
}

inline DD neg(DD a) { return {-a.hi, -a.lo}; }

// The accurate ("IEEE") double-double sum: relative error ~2^-105 also when
// the operands nearly cancel, which is the point of using it here.
inline DD add(DD a, DD b) {
  DD s = two_sum(a.hi, b.hi);
  const DD t = two_sum(a.lo, b.lo);
  s.lo += t.hi;
  s = fast_two_sum(s.hi, s.lo);
  s.lo += t.lo;
  return fast_two_sum(s.hi, s.lo);
}

// Products of small double-doubles (expm1_reduced's).
inline DD mul(DD a, DD b) {
  DD p = two_prod_small(a.hi, b.hi);
  p.lo += a.hi * b.lo + a.lo * b.hi;
  return fast_two_sum(p.hi, p.lo);
}

// a b - c d, accurate also where the two products nearly cancel (the case
// it is for): the products of the high parts are split exactly (two_prod),
// their difference is exact as a double-double (two_sum), and every smaller
// term is added to that in double-double, so the rounding errors are relative
// to the difference, not to the products. mul would round each product first,
// an error of ~2^-106 of the products: several ulp of a residual near the zero.
inline DD prod_diff(DD a, DD b, DD c, DD d) {
  const DD p = two_prod(a.hi, b.hi), q = two_prod(c.hi, d.hi);
  DD acc = two_sum(p.hi, -q.hi);
  acc = add(acc, two_sum(p.lo, -q.lo));
  acc = add(acc, two_prod(a.hi, b.lo));
  acc = add(acc, two_prod(a.lo, b.hi));
  acc = add(acc, neg(two_prod(c.hi, d.lo)));
  acc = add(acc, neg(two_prod(c.lo, d.hi)));
  return add(acc, {a.lo * b.lo, -(c.lo * d.lo)});
}

inline DD ldexp(DD a, int k) { return {std::ldexp(a.hi, k), std::ldexp(a.lo, k)}; }

// e^(x + xlo) = 2^k (1 + m): returns m, |m| < 0.42, and k. Reduction by a
// triple-double ln2 (x - k L1 exact by two_prod and the accurate sum), then
// r / 2^5, the Taylor series of e^r - 1 through r^14 (truncation below
// 2^-110 relative for |r / 2^5| <= 0.011; double-double from r^7 down), five
// squarings in the e^r - 1 form m -> 2m + m^2, which keeps m's relative
// accuracy when m is tiny (z ~ 0). |x| <= 746 (the callers' range).
inline DD expm1_reduced(double x, double xlo, int* k) {
  constexpr double kLn2a = 0x1.62e42fefa39efp-1;
  constexpr double kLn2b = 0x1.abc9e3b39803fp-56;
  constexpr double kLn2c = 0x1.7b57a079a1934p-111;
  constexpr int kHalvings = 5;
  constexpr int kFirstDD = 7;  // kInvFact[7] = 1/7!
  // 1/n!, n = 14 .. 2, as double-doubles.
  static constexpr DD kInvFact[] = {
      {0x1.93974a8c07c9dp-37, 0x1.05d6f8a2efd1fp-92},
      {0x1.6124613a86d09p-33, 0x1.f28e0cc748ebep-87},
      {0x1.1eed8eff8d898p-29, -0x1.2aec959e14c06p-83},
      {0x1.ae64567f544e4p-26, -0x1.c062e06d1f209p-80},
      {0x1.27e4fb7789f5cp-22, 0x1.cbbc05b4fa99ap-76},
      {0x1.71de3a556c734p-19, -0x1.c154f8ddc6c00p-73},
      {0x1.a01a01a01a01ap-16, 0x1.a01a01a01a01ap-76},
      {0x1.a01a01a01a01ap-13, 0x1.a01a01a01a01ap-73},
      {0x1.6c16c16c16c17p-10, -0x1.f49f49f49f49fp-65},
      {0x1.1111111111111p-7, 0x1.1111111111111p-63},
      {0x1.5555555555555p-5, 0x1.5555555555555p-59},
      {0x1.5555555555555p-3, 0x1.5555555555555p-57},
      {0x1.0000000000000p-1, 0.0},
  };
  const double kd = std::nearbyint(x * 1.4426950408889634);
  *k = int(kd);
  DD r = add({x, xlo}, neg(two_prod_small(kd, kLn2a)));
  r = add(r, neg(two_prod_small(kd, kLn2b)));
  r = fast_two_sum(r.hi, r.lo - kd * kLn2c);
  r = {std::ldexp(r.hi, -kHalvings), std::ldexp(r.lo, -kHalvings)};
  // The terms r^8/8! .. r^14/14! are below 2^-60 of r here: their sum in
  // double (relative error 2^-52) adds under 2^-112; from 1/7! on, double-double.
  double qh = kInvFact[0].hi;
  for (int i = 1; i < kFirstDD; ++i) qh = qh * r.hi + kInvFact[i].hi;
  DD q = {qh, 0.0};
  for (int i = kFirstDD; i < int(sizeof kInvFact / sizeof kInvFact[0]); ++i)
    q = add(mul(q, r), kInvFact[i]);
  q = add(mul(q, r), {1.0, 0.0});
  DD m = mul(q, r);
  for (int i = 0; i < kHalvings; ++i) m = add({2.0 * m.hi, 2.0 * m.lo}, mul(m, m));
  return m;
}

// e^(x + xlo) as a double-double (x <= 0 here: no overflow); 0 below -746,
// where e^x is below half the smallest subnormal.
inline DD exp_neg(double x, double xlo) {
  if (!(x >= -746.0)) return {0.0, 0.0};
  int k;
  const DD m = expm1_reduced(x, xlo, &k);
  return ldexp(add({1.0, 0.0}, m), k);
}

// exp(z) - t, t >= 0, z <= 709.8: 2^k ((1 - t 2^-k) + m), where t 2^-k is
// exact (t is within a factor 4 of e^z on the callers' path) and so is
// 1 - t 2^-k as a double-double; scaling last keeps 2^k finite for k = 1024.
inline double exp_minus(double z, double t) {
  int k;
  const DD m = expm1_reduced(z, 0.0, &k);
  const DD s = add(two_sum(1.0, -std::ldexp(t, -k)), m);
  return std::ldexp(s.hi, k);
}

// sigmoid(z) - t, 0 <= t <= 1. With E = e^-|z| <= 1:
//   z > 0:  ((1 - t) - t E) / (1 + E)
//   z <= 0: (E (1 - t) - t) / (1 + E)
// the numerator in double-double (1 - t exact as one), the division in double
// (the numerator carries all the cancellation).
inline double sigmoid_minus(double z, double t) {
  const DD e = exp_neg(-std::fabs(z), 0.0);
  const DD omt = two_sum(1.0, -t);
  const DD num = z > 0.0 ? prod_diff(omt, {1.0, 0.0}, e, {t, 0.0})
                         : prod_diff(e, omt, {t, 0.0}, {1.0, 0.0});
  return num.hi / (1.0 + e.hi);
}

}  // namespace dd
}  // namespace fastmlp
