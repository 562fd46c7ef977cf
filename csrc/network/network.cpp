#include "network/network.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "nn/dense.h"
#include "nn/rng.h"

namespace fastmlp {
namespace {

// Round element counts up so that every block starts on a 64-byte boundary.
template <class T>
index_t aligned_count(index_t n) {
  constexpr index_t per_line = index_t(kAlign / sizeof(T));
  return (n + per_line - 1) / per_line * per_line;
}

}  // namespace

template <class T>
Network<T>::Network(std::vector<LayerSpec> layers, Loss loss) : layers_(std::move(layers)), loss_(loss) {
  if (layers_.empty()) throw std::invalid_argument("layers: a network needs at least one layer");
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = layers_[l];
    if (s.in <= 0 || s.out <= 0)
      throw std::invalid_argument("layers: layer " + std::to_string(l) +
                                  " must have positive sizes, got in=" + std::to_string(s.in) +
                                  " out=" + std::to_string(s.out));
    if (l > 0 && s.in != layers_[l - 1].out)
      throw std::invalid_argument("layers: layer " + std::to_string(l) + " takes " +
                                  std::to_string(s.in) + " inputs but layer " +
                                  std::to_string(l - 1) + " gives " +
                                  std::to_string(layers_[l - 1].out));
    if (int(s.act) < 0 || int(s.act) >= kNumActs)
      throw std::invalid_argument("layers: unknown activation id " + std::to_string(int(s.act)));
  }
  if (int(loss) < 0 || int(loss) >= kNumLosses)
    throw std::invalid_argument("loss: unknown loss id " + std::to_string(int(loss)));
  if (loss != Loss::mse && layers_.back().act != Act::identity)
    throw std::invalid_argument(
        "layers: the output layer must be linear (activation identity) for cross_entropy and "
        "binary_cross_entropy, which apply softmax / sigmoid themselves");

  index_t off = 0;
  for (const LayerSpec& s : layers_) {
    w_off_.push_back(off);
    off += aligned_count<T>(s.out * s.in);
    b_off_.push_back(off);
    off += aligned_count<T>(s.out);
    n_params_ += s.out * s.in + s.out;
  }
  params_.resize(off);
  grads_.resize(off);
  params_.zero();
  grads_.zero();
  z_.assign(layers_.size(), nullptr);
  y_.assign(layers_.size(), nullptr);
  d_.assign(layers_.size(), nullptr);
}

template <class T>
void Network<T>::initialize(const std::vector<Init>& schemes, uint64_t seed) {
  if (schemes.size() != layers_.size())
    throw std::invalid_argument("init: expected one scheme per layer (" +
                                std::to_string(layers_.size()) + "), got " +
                                std::to_string(schemes.size()));
  for (std::size_t l = 0; l < layers_.size(); ++l) {
    const double fan_in = double(layers_[l].in), fan_out = double(layers_[l].out);
    const index_t count = layers_[l].out * layers_[l].in;
    T* w = params_.data() + w_off_[l];
    const uint32_t tag = uint32_t(l);
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
    for (index_t e = 0; e < count; ++e) {
      double v = 0.0;
      if (bound > 0.0)
        v = (2.0 * uniform01(seed, RngStream::init, tag, uint64_t(e)) - 1.0) * bound;
      else if (stdev > 0.0)
        v = normal01(seed, RngStream::init, tag, uint64_t(e)) * stdev;
      w[e] = T(v);
    }
    std::fill(params_.data() + b_off_[l], params_.data() + b_off_[l] + layers_[l].out, T(0));
  }
}

template <class T>
void Network<T>::reserve_rows(index_t n) {
  if (n <= cap_) return;
  const index_t L = num_layers();
  std::vector<index_t> zo(L), yo(L), dof(L);
  index_t total = 0;
  for (index_t l = 0; l < L; ++l) {
    const index_t sz = aligned_count<T>(n * layers_[l].out);
    const bool own_y = layers_[l].act != Act::identity || (l == L - 1 && loss_ != Loss::mse);
    zo[l] = total;
    total += sz;
    yo[l] = own_y ? total : zo[l];
    if (own_y) total += sz;
    dof[l] = total;
    total += sz;
  }
  ws_.resize(total);
  for (index_t l = 0; l < L; ++l) {
    z_[l] = ws_.data() + zo[l];
    y_[l] = ws_.data() + yo[l];
    d_[l] = ws_.data() + dof[l];
  }
  xb_.resize(n * input_size());
  tb_.resize(n * output_size());
  lb_.resize(n);
  row_loss_.resize(n);
  cap_ = n;
}

template <class T>
const T* Network<T>::forward(const T* x, index_t n) {
  reserve_rows(std::max<index_t>(n, 1));
  const index_t L = num_layers();
  for (index_t l = 0; l < L; ++l) {
    const LayerSpec& s = layers_[l];
    const T* in = l == 0 ? x : y_[l - 1];
    dense_forward<T>(z_[l], y_[l], in, params_.data() + w_off_[l], params_.data() + b_off_[l], n,
                     s.in, s.out, s.act);
  }
  loss_output<T>(loss_, y_[L - 1], z_[L - 1], n, output_size());
  last_n_ = n;
  return y_[L - 1];
}

template <class T>
double Network<T>::loss(const T* x, const Target<T>& t, index_t n) {
  forward(x, n);
  const index_t L = num_layers();
  return loss_forward_backward<T>(loss_, nullptr, z_[L - 1], y_[L - 1], t, n, output_size(),
                                  row_loss_.data());
}

template <class T>
void Network<T>::backward(const T* x, const Target<T>& t, index_t n, double* loss_out) {
  const index_t L = num_layers();
  *loss_out = loss_forward_backward<T>(loss_, d_[L - 1], z_[L - 1], y_[L - 1], t, n,
                                       output_size(), row_loss_.data());
  for (index_t l = L - 1; l >= 0; --l) {
    const LayerSpec& s = layers_[l];
    // The classification losses hand back dL/dz of the output layer already.
    const Act act = (l == L - 1 && loss_ != Loss::mse) ? Act::identity : s.act;
    dense_backward<T>(l > 0 ? d_[l - 1] : nullptr, grads_.data() + w_off_[l],
                      grads_.data() + b_off_[l], d_[l], d_[l], l == 0 ? x : y_[l - 1],
                      params_.data() + w_off_[l], z_[l], y_[l], n, s.in, s.out, act);
  }
}

template <class T>
double Network<T>::compute_gradients(const T* x, const Target<T>& t, index_t n) {
  forward(x, n);
  double l = 0.0;
  backward(x, t, n, &l);
  return l;
}

template <class T>
void Network<T>::set_sgd(const SgdConfig<T>& cfg) {
  sgd_ = cfg;
  if (cfg.momentum != T(0) && momentum_.size() != params_.size()) {
    momentum_.resize(params_.size());
    momentum_.zero();
    momentum_ready_ = false;
  }
}

template <class T>
double Network<T>::train_step(const T* x, const Target<T>& t, index_t n) {
  const double l = compute_gradients(x, t, n);
  if (!std::isfinite(l)) return l;
  const bool first = !momentum_ready_;
  sgd_step<T>(params_.data(), grads_.data(), momentum_buffer(), params_.size(), sgd_, first);
  if (sgd_.momentum != T(0)) momentum_ready_ = true;
  ++steps_;
  return l;
}

template <class T>
EpochResult Network<T>::train_epoch(const T* X, const Target<T>& t, index_t rows,
                                    const int64_t* perm, index_t batch_size,
                                    const std::function<bool()>& poll) {
  EpochResult r;
  if (rows <= 0) return r;
  if (batch_size <= 0) throw std::invalid_argument("batch_size: must be positive");
  const index_t bs = std::min(batch_size, rows);
  reserve_rows(bs);
  const index_t in = input_size(), k = output_size();
  for (index_t start = 0; start < rows; start += bs) {
    const index_t nb = std::min(bs, rows - start);
    const T* xb = X + start * in;
    Target<T> tb = t;
    if (t.labels) tb.labels = t.labels + start;
    if (t.dense) tb.dense = t.dense + start * k;
    if (perm) {
      // Gather the batch so that every kernel reads contiguous rows.
      for (index_t i = 0; i < nb; ++i) {
        const int64_t src = perm[start + i];
        std::memcpy(xb_.data() + i * in, X + src * in, sizeof(T) * std::size_t(in));
        if (t.labels) lb_[i] = t.labels[src];
        if (t.dense) std::memcpy(tb_.data() + i * k, t.dense + src * k, sizeof(T) * std::size_t(k));
      }
      xb = xb_.data();
      if (t.labels) tb.labels = lb_.data();
      if (t.dense) tb.dense = tb_.data();
    }
    const double l = train_step(xb, tb, nb);
    if (!std::isfinite(l)) {
      r.diverged = true;
      r.bad_batch = r.batches;
      r.loss_sum = l;
      return r;
    }
    r.loss_sum += l * double(nb);
    r.rows += nb;
    ++r.batches;
    if (poll && start + nb < rows && poll()) {
      r.interrupted = true;
      return r;
    }
  }
  return r;
}

void permutation(int64_t* out, index_t n, uint64_t seed, uint32_t epoch) {
  for (index_t i = 0; i < n; ++i) out[i] = i;
  for (index_t i = n - 1; i > 0; --i) {
    const double u = uniform01(seed, RngStream::shuffle, epoch, uint64_t(i));
    index_t j = index_t(u * double(i + 1));
    if (j > i) j = i;
    std::swap(out[i], out[j]);
  }
}

template class Network<float>;
template class Network<double>;

}  // namespace fastmlp
