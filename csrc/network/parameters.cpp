#include "network/parameters.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "common/memory.h"
#include "nn/rng.h"

namespace fastmlp {

template <class T>
Parameters<T>::Parameters(const std::vector<LayerSpec>& layers) : layers_(layers) {
  // Every count is checked (the layer sizes come from the caller or a file),
  // and the whole request against the memory limit before anything is
  // allocated, so an impossible network fails here and names its size.
  constexpr const char* what = "parameters";
  constexpr index_t line = index_t(kAlign / sizeof(T));
  index_t off = 0, stats = 0;
  auto take = [&off, what](index_t n) {
    const index_t at = off;
    off = count_add(off, count_add(n, line - 1, what) / line * line, what);
    return at;
  };
  for (const LayerSpec& s : layers_) {
    ParamOffsets o;
    const index_t w = count_mul(s.out, s.in, what);
    o.W = take(w);
    o.b = take(s.out);
    count_ = count_add(count_, count_add(w, s.out, what), what);
    if (s.batch_norm) {
      o.gamma = take(s.out);
      o.beta = take(s.out);
      count_ += 2 * s.out;
      stats_offset_.push_back(stats);
      stats += 2 * s.out;
    } else {
      stats_offset_.push_back(-1);
    }
    o.end = off;
    offsets_.push_back(o);
  }
  const std::uint64_t one = count_bytes(off, sizeof(T), what);
  // one < 2^63 (count_bytes), so 2 * one fits; the sum saturates.
  const std::uint64_t st = count_bytes(stats, sizeof(T), what);
  const std::uint64_t total = one * 2 > ~std::uint64_t(0) - st ? ~std::uint64_t(0) : one * 2 + st;
  require_memory(total, "parameters (" + std::to_string(count_) + " " +
                            (sizeof(T) == 4 ? "float32" : "float64") +
                            " values and as many gradients)");
  values_.resize(off);
  grads_.resize(off);
  values_.zero();
  grads_.zero();
  stats_.resize(std::max<index_t>(stats, 1));
  stats_.zero();
  for (index_t l = 0; l < num_layers(); ++l)
    if (T* v = running_var(l)) std::fill(v, v + layers_[l].out, T(1));
}

template <class T>
void Parameters<T>::initialize(const std::vector<Init>& schemes, uint64_t seed) {
  if (schemes.size() != layers_.size())
    throw std::invalid_argument("init: expected one scheme per layer (" +
                                std::to_string(layers_.size()) + "), got " +
                                std::to_string(schemes.size()));
  for (index_t l = 0; l < num_layers(); ++l) {
    const LayerSpec& s = layers_[l];
    const double fan_in = double(s.in), fan_out = double(s.out);
    double bound = 0.0, stdev = 0.0;
    switch (schemes[l]) {
      case Init::he_uniform: bound = std::sqrt(6.0 / fan_in); break;
      case Init::he_normal: stdev = std::sqrt(2.0 / fan_in); break;
      case Init::glorot_uniform: bound = std::sqrt(6.0 / (fan_in + fan_out)); break;
      case Init::glorot_normal: stdev = std::sqrt(2.0 / (fan_in + fan_out)); break;
      case Init::lecun_normal: stdev = std::sqrt(1.0 / fan_in); break;
      case Init::zeros: break;
      default: throw std::invalid_argument("init: unknown scheme");
    }
    const LayerTensors<T> p = layer(l);
    const uint32_t tag = uint32_t(l);
    for (index_t e = 0; e < s.out * s.in; ++e) {
      double v = 0.0;
      if (bound > 0.0)
        v = (2.0 * uniform01(seed, RngStream::init, tag, uint64_t(e)) - 1.0) * bound;
      else if (stdev > 0.0)
        v = normal01(seed, RngStream::init, tag, uint64_t(e)) * stdev;
      p.W[e] = T(v);
    }
    std::fill(p.b, p.b + s.out, T(0));
    if (s.batch_norm) {
      std::fill(p.gamma, p.gamma + s.out, T(1));
      std::fill(p.beta, p.beta + s.out, T(0));
      std::fill(running_mean(l), running_mean(l) + s.out, T(0));
      std::fill(running_var(l), running_var(l) + s.out, T(1));
    }
  }
}

template class Parameters<float>;
template class Parameters<double>;

}  // namespace fastmlp
