#include "network/network.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common/parallel.h"
#include "nn/activations.h"
#include "nn/batchnorm.h"
#include "nn/dense.h"
#include "nn/dropout.h"
#include "nn/rng.h"
#include "optim/regularize.h"

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
  const std::size_t L = layers_.size();
  for (std::size_t l = 0; l < L; ++l) {
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
    if (!(s.dropout >= 0.0 && s.dropout < 1.0))
      throw std::invalid_argument("dropout: layer " + std::to_string(l) +
                                  ": expected a rate in [0, 1), got " + std::to_string(s.dropout));
    if (l + 1 == L && (s.dropout > 0.0 || s.batch_norm))
      throw std::invalid_argument(
          "layers: dropout and batch_norm apply to hidden layers, not to the output layer");
  }
  if (int(loss) < 0 || int(loss) >= kNumLosses)
    throw std::invalid_argument("loss: unknown loss id " + std::to_string(int(loss)));
  if (loss != Loss::mse && layers_.back().act != Act::identity)
    throw std::invalid_argument(
        "layers: the output layer must be linear (activation identity) for cross_entropy and "
        "binary_cross_entropy, which apply softmax / sigmoid themselves");

  index_t off = 0, soff = 0;
  for (const LayerSpec& s : layers_) {
    w_off_.push_back(off);
    off += aligned_count<T>(s.out * s.in);
    b_off_.push_back(off);
    off += aligned_count<T>(s.out);
    n_params_ += s.out * s.in + s.out;
    if (s.batch_norm) {
      g_off_.push_back(off);
      off += aligned_count<T>(s.out);
      be_off_.push_back(off);
      off += aligned_count<T>(s.out);
      n_params_ += 2 * s.out;
      rs_off_.push_back(soff);
      soff += 2 * s.out;
    } else {
      g_off_.push_back(-1);
      be_off_.push_back(-1);
      rs_off_.push_back(-1);
    }
    end_off_.push_back(off);
  }
  params_.resize(off);
  grads_.resize(off);
  params_.zero();
  grads_.zero();
  stats_.resize(std::max<index_t>(soff, 1));
  stats_.zero();
  for (std::size_t l = 0; l < L; ++l)
    if (rs_off_[l] >= 0)
      std::fill(running_var(index_t(l)), running_var(index_t(l)) + layers_[l].out, T(1));
  z_.assign(L, nullptr);
  y_.assign(L, nullptr);
  d_.assign(L, nullptr);
  lin_.assign(L, nullptr);
  xhat_.assign(L, nullptr);
  mask_.assign(L, nullptr);
  drop_.assign(L, nullptr);
  out_.assign(L, nullptr);
  gsq_.assign(L, 0.0);
  alive_.resize(L);
  for (std::size_t l = 0; l < L; ++l) alive_[l].assign(std::size_t(layers_[l].out), 0);
  index_t boff = 0;
  for (const LayerSpec& s : layers_) {
    bnv_off_.push_back(s.batch_norm ? boff : -1);
    if (s.batch_norm) boff += 3 * aligned_count<T>(s.out);
  }
  bnv_.resize(std::max<index_t>(boff, 1));
  set_optimizer(OptConfig{});
}

template <class T>
void Network<T>::initialize(const std::vector<Init>& schemes, uint64_t seed) {
  if (schemes.size() != layers_.size())
    throw std::invalid_argument("init: expected one scheme per layer (" +
                                std::to_string(layers_.size()) + "), got " +
                                std::to_string(schemes.size()));
  seed_ = seed;
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
    const index_t out = layers_[l].out;
    std::fill(params_.data() + b_off_[l], params_.data() + b_off_[l] + out, T(0));
    if (layers_[l].batch_norm) {
      std::fill(params_.data() + g_off_[l], params_.data() + g_off_[l] + out, T(1));
      std::fill(params_.data() + be_off_[l], params_.data() + be_off_[l] + out, T(0));
      std::fill(running_mean(index_t(l)), running_mean(index_t(l)) + out, T(0));
      std::fill(running_var(index_t(l)), running_var(index_t(l)) + out, T(1));
    }
  }
}

template <class T>
void Network<T>::reserve_rows(index_t n) {
  if (n <= cap_) return;
  const index_t L = num_layers();
  std::vector<index_t> zo(L), yo(L), dof(L), lo(L, -1), xo(L, -1), mo(L, -1), po(L, -1);
  index_t total = 0;
  auto take = [&](index_t sz) {
    const index_t at = total;
    total += sz;
    return at;
  };
  for (index_t l = 0; l < L; ++l) {
    const LayerSpec& s = layers_[l];
    const index_t sz = aligned_count<T>(n * s.out);
    const bool own_y = s.act != Act::identity || (l == L - 1 && loss_ != Loss::mse);
    zo[l] = take(sz);
    yo[l] = own_y ? take(sz) : zo[l];
    dof[l] = take(sz);
    if (s.batch_norm) {
      lo[l] = take(sz);
      xo[l] = take(sz);
    }
    if (s.dropout > 0.0 && l + 1 < L) {
      mo[l] = take(sz);
      po[l] = take(sz);
    }
  }
  ws_.resize(total);
  auto at = [&](index_t o) { return o < 0 ? nullptr : ws_.data() + o; };
  for (index_t l = 0; l < L; ++l) {
    z_[l] = at(zo[l]);
    y_[l] = at(yo[l]);
    d_[l] = at(dof[l]);
    lin_[l] = at(lo[l]);
    xhat_[l] = at(xo[l]);
    mask_[l] = at(mo[l]);
    drop_[l] = at(po[l]);
  }
  xb_.resize(n * input_size());
  tb_.resize(n * output_size());
  swb_.resize(n);
  lb_.resize(n);
  row_loss_.resize(n);
  lse_.resize(n);
  cap_ = n;
}

template <class T>
const T* Network<T>::forward(const T* x, index_t n, bool training) {
  reserve_rows(std::max<index_t>(n, 1));
  const index_t L = num_layers();
  T* P = params_.data();
  for (index_t l = 0; l < L; ++l) {
    const LayerSpec& s = layers_[l];
    const T* in = layer_input(x, l);
    if (s.batch_norm) {
      dense_forward<T>(lin_[l], lin_[l], in, P + w_off_[l], P + b_off_[l], n, s.in, s.out,
                       Act::identity);
      if (training) {
        if (n < 2)
          throw std::invalid_argument(
              "X: batch normalization in training needs at least 2 rows per batch, got " +
              std::to_string(n));
        T* v = bnv_.data() + bnv_off_[l];
        const index_t a = aligned_count<T>(s.out);
        batchnorm_forward_train<T>(lin_[l], n, s.out, P + g_off_[l], P + be_off_[l], kBnEps,
                                   xhat_[l], z_[l], v, v + a, v + 2 * a);
      } else {
        batchnorm_forward_eval<T>(lin_[l], n, s.out, P + g_off_[l], P + be_off_[l],
                                  running_mean(l), running_var(l), kBnEps, z_[l]);
      }
      if (y_[l] != z_[l]) activation_forward<T>(y_[l], z_[l], n, s.out, s.act);
    } else {
      dense_forward<T>(z_[l], y_[l], in, P + w_off_[l], P + b_off_[l], n, s.in, s.out, s.act);
    }
    if (dropout_on(l, training)) {
      dropout_mask<T>(mask_[l], n * s.out, s.dropout, seed_, uint64_t(steps_), uint32_t(l));
      apply_mask<T>(drop_[l], y_[l], mask_[l], n * s.out);
      out_[l] = drop_[l];
    } else {
      out_[l] = y_[l];
    }
  }
  loss_output<T>(loss_, y_[L - 1], z_[L - 1], n, output_size(), lse_.data());
  last_n_ = n;
  last_training_ = training;
  return y_[L - 1];
}

template <class T>
double Network<T>::penalty_value() const {
  if (reg_.l1 == 0.0 && reg_.l2 == 0.0) return 0.0;
  double pen = 0.0;
  for (index_t l = 0; l < num_layers(); ++l) {
    const T* w = params_.data() + w_off_[l];
    const index_t cnt = layers_[l].out * layers_[l].in;
    double s1 = 0.0, s2 = 0.0;
    for (index_t i = 0; i < cnt; ++i) {
      s1 += std::fabs(double(w[i]));
      s2 += double(w[i]) * double(w[i]);
    }
    pen += reg_.l1 * s1 + reg_.l2 * s2;
  }
  return pen;
}

template <class T>
double Network<T>::loss(const T* x, const Target<T>& t, index_t n, bool training) {
  forward(x, n, training);
  const index_t L = num_layers();
  return loss_forward_backward<T>(loss_, nullptr, z_[L - 1], y_[L - 1], t, n, output_size(),
                                  row_loss_.data(), lse_.data()) +
         penalty_value();
}

template <class T>
void Network<T>::backward(const T* x, const Target<T>& t, index_t n, double* loss_out) {
  const index_t L = num_layers();
  T* P = params_.data();
  T* G = grads_.data();
  *loss_out = loss_forward_backward<T>(loss_, d_[L - 1], z_[L - 1], y_[L - 1], t, n,
                                       output_size(), row_loss_.data(), lse_.data());
  for (index_t l = L - 1; l >= 0; --l) {
    const LayerSpec& s = layers_[l];
    T* d = d_[l];
    T* dx = l > 0 ? d_[l - 1] : nullptr;
    const T* in = layer_input(x, l);
    // The classification losses hand back dL/dz of the output layer already.
    const Act act = (l == L - 1 && loss_ != Loss::mse) ? Act::identity : s.act;
    if (dropout_on(l, last_training_)) apply_mask<T>(d, d, mask_[l], n * s.out);
    if (s.batch_norm) {
      if (act != Act::identity) activation_backward<T>(d, d, z_[l], y_[l], n, s.out, act);
      const T* v = bnv_.data() + bnv_off_[l];
      const index_t a = aligned_count<T>(s.out);
      batchnorm_backward<T>(d, xhat_[l], P + g_off_[l], v + 2 * a, n, s.out, d, G + g_off_[l],
                            G + be_off_[l]);
      dense_backward<T>(dx, G + w_off_[l], G + b_off_[l], d, d, in, P + w_off_[l], lin_[l],
                        lin_[l], n, s.in, s.out, Act::identity);
    } else {
      dense_backward<T>(dx, G + w_off_[l], G + b_off_[l], d, d, in, P + w_off_[l], z_[l], y_[l],
                        n, s.in, s.out, act);
    }
  }
}

template <class T>
double Network<T>::compute_gradients(const T* x, const Target<T>& t, index_t n) {
  forward(x, n, true);
  double l = 0.0;
  backward(x, t, n, &l);
  const bool pen = reg_.l1 != 0.0 || reg_.l2 != 0.0;
  for (index_t k = 0; k < num_layers(); ++k) {
    if (pen)
      l += add_penalty<T>(params_.data() + w_off_[k], grads_.data() + w_off_[k],
                          layers_[k].out * layers_[k].in, reg_.l1, reg_.l2);
    gsq_[k] = sum_squares<T>(grads_.data() + w_off_[k], end_off_[k] - w_off_[k]);
  }
  // Units that gave a positive output for some row (dead-ReLU statistics).
  for (index_t k = 0; k + 1 < num_layers(); ++k) {
    if (layers_[k].act != Act::relu) continue;
    unsigned char* alive = alive_[k].data();
    const index_t out = layers_[k].out;
    const T* yk = y_[k];
    for (index_t i = 0; i < n; ++i)
#pragma omp simd
      for (index_t j = 0; j < out; ++j) alive[j] |= (unsigned char)(yk[i * out + j] > T(0));
  }
  return l;
}

template <class T>
void Network<T>::reset_unit_activity() {
  for (auto& a : alive_) std::fill(a.begin(), a.end(), (unsigned char)0);
}

template <class T>
double Network<T>::dead_fraction(index_t l) const {
  const auto& a = alive_[l];
  index_t dead = 0;
  for (unsigned char v : a) dead += v == 0;
  return a.empty() ? 0.0 : double(dead) / double(a.size());
}

template <class T>
void Network<T>::set_optimizer(const OptConfig& cfg) {
  validate(cfg);
  opt_ = cfg;
  n_state_ = fastmlp::optimizer_state_count(cfg);
  T* ptrs[3] = {nullptr, nullptr, nullptr};
  for (int i = 0; i < 3; ++i) {
    state_[i].resize(i < n_state_ ? params_.size() : 0);
    if (i < n_state_) {
      state_[i].zero();
      ptrs[i] = state_[i].data();
    }
  }
  if (n_state_) optimizer_init_state<T>(opt_, ptrs, params_.size());
  opt_steps_ = 0;
}

template <class T>
void Network<T>::set_lr(double lr) {
  if (!(lr >= 0.0) || !std::isfinite(lr))
    throw std::invalid_argument("lr: expected a finite value >= 0, got " + std::to_string(lr));
  opt_.lr = lr;
}

template <class T>
void Network<T>::set_regularization(const Regularization& r) {
  auto check = [](double v, const char* name) {
    if (!(v >= 0.0) || !std::isfinite(v))
      throw std::invalid_argument(std::string(name) + ": expected a finite value >= 0, got " +
                                  std::to_string(v));
  };
  check(r.l1, "l1");
  check(r.l2, "l2");
  check(r.clip_value, "clip_value");
  check(r.clip_norm, "clip_norm");
  reg_ = r;
}

template <class T>
StepResult Network<T>::train_step(const T* x, const Target<T>& t, index_t n) {
  StepResult r;
  r.loss = compute_gradients(x, t, n);
  double total = 0.0;
  for (index_t l = num_layers() - 1; l >= 0; --l) {
    if (!std::isfinite(gsq_[l]) && r.bad_layer < 0) r.bad_layer = l;
    total += gsq_[l];
  }
  if (!std::isfinite(r.loss) || !std::isfinite(total)) {
    r.ok = false;
    if (r.bad_layer < 0)  // finite gradients, non-finite loss: blame the largest one
      for (index_t l = 0; l < num_layers(); ++l)
        if (r.bad_layer < 0 || gsq_[l] > gsq_[r.bad_layer]) r.bad_layer = l;
    return r;
  }
  const index_t count = params_.size();
  if (reg_.clip_value > 0.0) {
    clip_by_value<T>(grads_.data(), count, reg_.clip_value);
    if (reg_.clip_norm > 0.0) total = sum_squares<T>(grads_.data(), count);
  }
  if (reg_.clip_norm > 0.0) {
    // torch.nn.utils.clip_grad_norm_: coef = max / (norm + 1e-6), clamped to 1.
    const double coef = reg_.clip_norm / (std::sqrt(total) + 1e-6);
    if (coef < 1.0) scale_in_place<T>(grads_.data(), count, coef);
  }
  T* ptrs[3] = {state_[0].data(), state_[1].data(), state_[2].data()};
  optimizer_step<T>(opt_, params_.data(), grads_.data(), ptrs, count, opt_steps_ + 1);
  ++opt_steps_;
  for (index_t l = 0; l < num_layers(); ++l)
    if (layers_[l].batch_norm) {
      const T* v = bnv_.data() + bnv_off_[l];
      batchnorm_update_running<T>(running_mean(l), running_var(l), v,
                                  v + aligned_count<T>(layers_[l].out), n, layers_[l].out,
                                  kBnMomentum);
    }
  ++steps_;
  return r;
}

template <class T>
void Network<T>::train_epoch(const T* X, const Target<T>& t, index_t rows, const int64_t* perm,
                             index_t batch_size, index_t start, index_t max_batches,
                             const std::function<bool()>& poll, EpochResult& r) {
  if (batch_size <= 0) throw std::invalid_argument("batch_size: must be positive");
  if (rows <= 0 || start >= rows) return;
  const index_t bs = std::min(batch_size, rows);
  reserve_rows(bs);
  const index_t L = num_layers(), in = input_size(), k = output_size();
  r.grad_norm_sum.resize(std::size_t(L), 0.0);
  index_t done = 0;
  for (index_t pos = start; pos < rows && (max_batches < 0 || done < max_batches); pos += bs) {
    const index_t nb = std::min(bs, rows - pos);
    const T* xb = X + pos * in;
    Target<T> tb = t;
    if (t.labels) tb.labels = t.labels + pos;
    if (t.dense) tb.dense = t.dense + pos * k;
    if (t.sample_weight) tb.sample_weight = t.sample_weight + pos;
    if (perm) {
      // Gather the batch so that every kernel reads contiguous rows. The
      // copy is bound by the latency of scattered rows, so threads help.
      const int nt = threads_for(double(nb) * double(in + k), 32768.0);
      parallel_for(nb, nt, [&](index_t i) {
        const int64_t src = perm[pos + i];
        std::memcpy(xb_.data() + i * in, X + src * in, sizeof(T) * std::size_t(in));
        if (t.labels) lb_[i] = t.labels[src];
        if (t.dense) std::memcpy(tb_.data() + i * k, t.dense + src * k, sizeof(T) * std::size_t(k));
        if (t.sample_weight) swb_[i] = t.sample_weight[src];
      });
      xb = xb_.data();
      if (t.labels) tb.labels = lb_.data();
      if (t.dense) tb.dense = tb_.data();
      if (t.sample_weight) tb.sample_weight = swb_.data();
    }
    if (perm) {
      // The next batch's rows are scattered over X: ask for them now, so that
      // their cache misses overlap this batch's GEMMs instead of stalling the
      // next gather (one prefetch per 64-byte line, into the outer caches).
      const index_t next = pos + nb, nn = std::min(bs, rows - next);
      const std::size_t row_bytes = sizeof(T) * std::size_t(in);
      for (index_t i = 0; i < nn && next < rows; ++i) {
        const char* src = reinterpret_cast<const char*>(X + perm[next + i] * in);
#if defined(__GNUC__)
        for (std::size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(src + off, 0, 1);
#else
        (void)src;
        (void)row_bytes;
#endif
      }
    }
    const StepResult s = train_step(xb, tb, nb);
    if (!s.ok) {
      r.diverged = true;
      r.bad_batch = pos / bs;
      r.bad_layer = s.bad_layer;
      r.bad_loss = s.loss;
      return;
    }
    r.loss_sum += s.loss * double(nb);
    r.rows += nb;
    ++r.batches;
    ++done;
    for (index_t l = 0; l < L; ++l) r.grad_norm_sum[std::size_t(l)] += std::sqrt(gsq_[l]);
    // Training accuracy from this batch's (training-mode) output.
    const T* p = y_[L - 1];
    if (loss_ == Loss::cross_entropy) {
      for (index_t i = 0; i < nb; ++i) {
        const T* row = p + i * k;
        const index_t pred = index_t(std::max_element(row, row + k) - row);
        index_t truth;
        if (tb.labels)
          truth = tb.labels[i];
        else
          truth = index_t(std::max_element(tb.dense + i * k, tb.dense + (i + 1) * k) -
                          (tb.dense + i * k));
        r.correct += pred == truth;
      }
      r.predictions += double(nb);
    } else if (loss_ == Loss::binary_cross_entropy) {
      for (index_t i = 0; i < nb * k; ++i) r.correct += (p[i] > T(0.5)) == (tb.dense[i] > T(0.5));
      r.predictions += double(nb * k);
    }
    if (poll && pos + nb < rows && poll()) {
      r.interrupted = true;
      return;
    }
  }
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
