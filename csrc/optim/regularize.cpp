#include "optim/regularize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/parallel.h"
#include "common/restrict.h"

namespace fastmlp {
namespace {

constexpr index_t kChunk = 8192;

// sum over chunks of f(begin, end), each chunk's partial in double, added in
// chunk order.
template <class F>
double chunked_sum(index_t count, F&& f) {
  const index_t chunks = (count + kChunk - 1) / kChunk;
  if (chunks <= 1) return count > 0 ? f(index_t(0), count) : 0.0;
  std::vector<double> part(std::size_t(chunks), 0.0);
  const int nt = std::min<int>(threads_for(double(count), 65536.0), int(chunks));
  parallel_for(chunks, nt, [&](index_t c) {
    part[std::size_t(c)] = f(c * kChunk, std::min(count, (c + 1) * kChunk));
  });
  double s = 0.0;
  for (double v : part) s += v;
  return s;
}

}  // namespace

template <class T>
double add_penalty(const T* FM_RESTRICT w, T* FM_RESTRICT gw, index_t count, double l1, double l2) {
  const T a = T(l1), b = T(2.0 * l2);
  return chunked_sum(count, [&](index_t i0, index_t i1) {
    double s1 = 0.0, s2 = 0.0;
#pragma omp simd reduction(+ : s1, s2)
    for (index_t i = i0; i < i1; ++i) {
      const T v = w[i];
      const T sgn = T(v > T(0)) - T(v < T(0));
      gw[i] += a * sgn + b * v;
      s1 += std::fabs(double(v));
      s2 += double(v) * double(v);
    }
    return l1 * s1 + l2 * s2;
  });
}

// Within a chunk, 32 independent partial sums in T (so the loop runs at the
// vector width with enough chains to hide the add latency), folded in a
// fixed order and then into double. A float32 chunk sum carries a relative
// error of about 8192/32 * eps32 ~ 3e-5 at worst, harmless for a norm used
// to clip or to report; float64 sums are as exact as torch's.
template <class T>
double sum_squares(const T* FM_RESTRICT g, index_t count) {
  return chunked_sum(count, [&](index_t i0, index_t i1) {
    constexpr int kLanes = 32;
    T acc[kLanes] = {};
    index_t i = i0;
    for (; i + kLanes <= i1; i += kLanes)
#pragma omp simd
      for (int j = 0; j < kLanes; ++j) acc[j] += g[i + j] * g[i + j];
    double s = 0.0;
    for (int j = 0; j < kLanes; ++j) s += double(acc[j]);
    for (; i < i1; ++i) s += double(g[i]) * double(g[i]);
    return s;
  });
}

template <class T>
void clip_by_value(T* FM_RESTRICT g, index_t count, double v) {
  const T hi = T(v), lo = T(-v);
  parallel_for_simd(count, threads_for(double(count), 65536.0),
                    [&](index_t i) { g[i] = std::min(std::max(g[i], lo), hi); });
}

template <class T>
void scale_in_place(T* FM_RESTRICT g, index_t count, double s) {
  const T f = T(s);
  parallel_for_simd(count, threads_for(double(count), 65536.0), [&](index_t i) { g[i] *= f; });
}

#define FM_INSTANTIATE(T)                                                      \
  template double add_penalty<T>(const T*, T*, index_t, double, double);       \
  template double sum_squares<T>(const T*, index_t);                           \
  template void clip_by_value<T>(T*, index_t, double);                         \
  template void scale_in_place<T>(T*, index_t, double);
FM_INSTANTIATE(float)
FM_INSTANTIATE(double)
#undef FM_INSTANTIATE

}  // namespace fastmlp
