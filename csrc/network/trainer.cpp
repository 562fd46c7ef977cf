#include "network/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/memory.h"
#include "common/parallel.h"
#include "network/network.h"
#include "nn/batchnorm.h"
#include "nn/rng.h"
#include "optim/regularize.h"

namespace fastmlp {

namespace {
constexpr double kBnMomentum = 0.1;  // torch.nn.BatchNorm1d's default
}  // namespace

template <class T>
Trainer<T>::Trainer(const std::vector<LayerSpec>& layers, index_t buffer_size)
    : layers_(layers), buffer_size_(buffer_size), grad_sumsq_(layers.size(), 0.0) {
  alive_.resize(layers_.size());
  for (std::size_t l = 0; l < layers_.size(); ++l) alive_[l].assign(std::size_t(layers_[l].out), 0);
  set_optimizer(OptConfig{});
}

template <class T>
void Trainer<T>::set_optimizer(const OptConfig& cfg) {
  validate(cfg);
  const int n_state = fastmlp::optimizer_state_count(cfg);
  // Buffers only grow: views that Python took of an earlier optimizer's
  // state stay valid memory for the network's lifetime. They are all grown
  // before the configuration changes, so a failed allocation leaves the
  // previous optimizer in place, its state intact.
  int missing = 0;
  for (int i = 0; i < n_state; ++i) missing += state_[i].size() < buffer_size_;
  if (missing > 0) {
    const std::uint64_t one = count_bytes(buffer_size_, sizeof(T), "optimizer state");
    require_memory(one * std::uint64_t(missing),
                   "optimizer state (" + std::to_string(missing) + " buffer" +
                       (missing > 1 ? "s" : "") + " of " + std::to_string(buffer_size_) + " " +
                       (sizeof(T) == 4 ? "float32" : "float64") + " values)");
    for (int i = 0; i < n_state; ++i) {
      if (state_[i].size() >= buffer_size_) continue;
      AlignedBuffer<T> grown(buffer_size_);  // throws before state_[i] changes
      state_[i] = std::move(grown);
    }
  }
  opt_ = cfg;
  n_state_ = n_state;
  T* ptrs[3] = {nullptr, nullptr, nullptr};
  for (int i = 0; i < n_state_; ++i) {
    state_[i].zero();
    ptrs[i] = state_[i].data();
  }
  if (n_state_) optimizer_init_state<T>(opt_, ptrs, buffer_size_);
  opt_steps_ = 0;
}

template <class T>
void Trainer<T>::set_lr(double lr) {
  if (!(lr >= 0.0) || !std::isfinite(lr))
    throw std::invalid_argument("lr: expected a finite value >= 0, got " + std::to_string(lr));
  opt_.lr = lr;
}

template <class T>
void Trainer<T>::set_regularization(const Regularization& r) {
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
double Trainer<T>::penalty(const Parameters<T>& p) const {
  if (reg_.l1 == 0.0 && reg_.l2 == 0.0) return 0.0;
  double pen = 0.0;
  for (index_t l = 0; l < p.num_layers(); ++l) {
    const T* w = p.layer(l).W;
    const index_t count = p.spec(l).out * p.spec(l).in;
    double s1 = 0.0, s2 = 0.0;
    for (index_t i = 0; i < count; ++i) {
      s1 += std::fabs(double(w[i]));
      s2 += double(w[i]) * double(w[i]);
    }
    pen += reg_.l1 * s1 + reg_.l2 * s2;
  }
  return pen;
}

namespace {

// [a0, a1) ∩ [b0, b1) as (start, count); count 0 when they do not meet.
inline std::pair<index_t, index_t> overlap(index_t a0, index_t a1, index_t b0, index_t b1) {
  const index_t lo = std::max(a0, b0), hi = std::min(a1, b1);
  return {lo, hi > lo ? hi - lo : 0};
}

}  // namespace

template <class T>
void Trainer<T>::penalize_span(Parameters<T>& p, index_t begin, index_t end, double* pen,
                               double* sumsq) {
  const bool any = reg_.l1 != 0.0 || reg_.l2 != 0.0;
  const index_t L = p.num_layers();
  for (index_t l = 0; l < L; ++l) {
    const ParamOffsets& o = p.offsets(l);
    pen[l] = 0.0;
    if (any) {
      const auto [w0, wn] = overlap(o.W, o.W + p.spec(l).out * p.spec(l).in, begin, end);
      if (wn > 0)
        pen[l] = add_penalty<T>(p.values() + w0, p.grads() + w0, wn, reg_.l1, reg_.l2);
    }
    const auto [g0, gn] = overlap(o.W, o.end, begin, end);
    sumsq[l] = gn > 0 ? sum_squares<T>(p.grads() + g0, gn) : 0.0;
  }
}

template <class T>
double Trainer<T>::penalize(Parameters<T>& p, double loss) {
  const index_t L = p.num_layers();
  span_partial_.resize(std::size_t(L));
  penalize_span(p, 0, p.size(), span_partial_.data(), grad_sumsq_.data());
  if (reg_.l1 != 0.0 || reg_.l2 != 0.0)
    for (index_t l = 0; l < L; ++l) loss += span_partial_[std::size_t(l)];
  return loss;
}

template <class T>
StepResult Trainer<T>::check_and_clip(Parameters<T>& p, double loss) {
  return check_and_clip_span(p, loss, 0, p.size(), nullptr);
}

template <class T>
StepResult Trainer<T>::check_and_clip_span(Parameters<T>& p, double loss, index_t begin,
                                           index_t end, const SpanReduce* reduce) {
  StepResult r;
  r.loss = loss;
  const index_t L = p.num_layers();
  double total = 0.0;
  for (index_t l = L - 1; l >= 0; --l) {
    if (!std::isfinite(grad_sumsq_[l]) && r.bad_layer < 0) r.bad_layer = l;
    total += grad_sumsq_[l];
  }
  if (!std::isfinite(r.loss) || !std::isfinite(total)) {
    r.ok = false;
    if (r.bad_layer < 0)  // finite gradients, non-finite loss: blame the largest one
      for (index_t l = 0; l < L; ++l)
        if (r.bad_layer < 0 || grad_sumsq_[l] > grad_sumsq_[r.bad_layer]) r.bad_layer = l;
    return r;
  }
  T* g = p.grads() + begin;
  const index_t count = end - begin;
  if (reg_.clip_value > 0.0) {
    clip_by_value<T>(g, count, reg_.clip_value);
    if (reg_.clip_norm > 0.0) {
      total = sum_squares<T>(g, count);
      if (reduce) {
        double sum = 0.0;
        (*reduce)(&total, 1, &sum);
        total = sum;
      }
    }
  }
  if (reg_.clip_norm > 0.0) {
    // torch.nn.utils.clip_grad_norm_: coef = max / (norm + 1e-6), clamped to 1.
    const double coef = reg_.clip_norm / (std::sqrt(total) + 1e-6);
    if (coef < 1.0) scale_in_place<T>(g, count, coef);
  }
  return r;
}

template <class T>
StepResult Trainer<T>::finish_span(Parameters<T>& p, Workspace<T>& ws, double loss, index_t n,
                                   index_t begin, index_t end, const SpanReduce& reduce) {
  if (begin < 0 || end < begin || end > p.size())
    throw std::invalid_argument("shard: [" + std::to_string(begin) + ", " + std::to_string(end) +
                                ") is not within the flat buffer of " +
                                std::to_string(p.size()) + " values");
  const index_t L = p.num_layers();
  // Penalties, then squared norms: one reduction for both.
  span_partial_.resize(std::size_t(2 * L));
  span_global_.resize(std::size_t(2 * L));
  penalize_span(p, begin, end, span_partial_.data(), span_partial_.data() + L);
  reduce(span_partial_.data(), 2 * L, span_global_.data());
  if (reg_.l1 != 0.0 || reg_.l2 != 0.0)
    for (index_t l = 0; l < L; ++l) loss += span_global_[std::size_t(l)];
  std::copy(span_global_.begin() + L, span_global_.end(), grad_sumsq_.begin());
  const StepResult r = check_and_clip_span(p, loss, begin, end, &reduce);
  if (!r.ok) return r;
  update_span(p, begin, end);
  finish_update(p, ws, n);
  return r;
}

template <class T>
void Trainer<T>::update(Parameters<T>& p, Workspace<T>& ws, index_t n) {
  update_span(p, 0, p.size());
  finish_update(p, ws, n);
}

template <class T>
void Trainer<T>::update_span(Parameters<T>& p, index_t begin, index_t end) {
  T* states[3] = {state_[0].data(), state_[1].data(), state_[2].data()};
  for (T*& s : states)
    if (s) s += begin;
  optimizer_step<T>(opt_, p.values() + begin, p.grads() + begin, states, end - begin,
                    opt_steps_ + 1);
}

template <class T>
void Trainer<T>::finish_update(Parameters<T>& p, Workspace<T>& ws, index_t n) {
  ++opt_steps_;
  for (index_t l = 0; l < p.num_layers(); ++l)
    if (p.spec(l).batch_norm) {
      const BnCache<T> bn = ws.bn_cache(l);
      batchnorm_update_running<T>(p.running_mean(l), p.running_var(l), bn.mean, bn.var, n,
                                  p.spec(l).out, kBnMomentum);
    }
  ++steps_;
}

template <class T>
void Trainer<T>::record_unit_activity(const Workspace<T>& ws, index_t n) {
  for (std::size_t l = 0; l + 1 < layers_.size(); ++l) {
    if (layers_[l].act != Act::relu) continue;
    unsigned char* alive = alive_[l].data();
    const index_t out = layers_[l].out;
    const T* y = ws.layer(index_t(l)).y;
    for (index_t i = 0; i < n; ++i)
#pragma omp simd
      for (index_t j = 0; j < out; ++j) alive[j] |= (unsigned char)(y[i * out + j] > T(0));
  }
}

template <class T>
void Trainer<T>::reset_unit_activity() {
  for (auto& a : alive_) std::fill(a.begin(), a.end(), (unsigned char)0);
}

template <class T>
double Trainer<T>::dead_fraction(index_t l) const {
  const auto& a = alive_[l];
  index_t dead = 0;
  for (unsigned char v : a) dead += v == 0;
  return a.empty() ? 0.0 : double(dead) / double(a.size());
}

namespace {

// Rows perm[pos, pos + nb) of X and the targets into the workspace, so that
// every kernel reads contiguous rows; returns the gathered batch's target.
// The copy is bound by the latency of scattered rows, so threads help.
template <class T>
Target<T> gather(Workspace<T>& ws, const T* X, const Target<T>& t, const int64_t* perm,
                 index_t pos, index_t nb, index_t in, index_t k) {
  T* xb = ws.batch_x();
  T* tb = ws.batch_target();
  T* wb = ws.batch_weight();
  int32_t* lb = ws.batch_labels();
  const int nt = threads_for(double(nb) * double(in + k), 32768.0);
  parallel_for(nb, nt, [&](index_t i) {
    const int64_t src = perm[pos + i];
    std::memcpy(xb + i * in, X + src * in, sizeof(T) * std::size_t(in));
    if (t.labels) lb[i] = t.labels[src];
    if (t.dense) std::memcpy(tb + i * k, t.dense + src * k, sizeof(T) * std::size_t(k));
    if (t.sample_weight) wb[i] = t.sample_weight[src];
  });
  Target<T> out = t;
  if (t.labels) out.labels = lb;
  if (t.dense) out.dense = tb;
  if (t.sample_weight) out.sample_weight = wb;
  return out;
}

// The next batch's rows are scattered over X: ask for them now, so that their
// cache misses overlap this batch's GEMMs instead of stalling the next gather
// (one prefetch per 64-byte line, into the outer caches).
template <class T>
void prefetch_rows(const T* X, const int64_t* perm, index_t from, index_t count, index_t in) {
#if defined(__GNUC__)
  const std::size_t row_bytes = sizeof(T) * std::size_t(in);
  for (index_t i = 0; i < count; ++i) {
    const char* src = reinterpret_cast<const char*>(X + perm[from + i] * in);
    for (std::size_t off = 0; off < row_bytes; off += 64) __builtin_prefetch(src + off, 0, 1);
  }
#else
  (void)X, (void)perm, (void)from, (void)count, (void)in;
#endif
}

// Training accuracy of one batch from its (training-mode) output p.
template <class T>
void count_correct(Loss loss, const T* p, const Target<T>& t, index_t nb, index_t k,
                   EpochResult& r) {
  if (loss == Loss::cross_entropy) {
    for (index_t i = 0; i < nb; ++i) {
      const T* row = p + i * k;
      const index_t pred = index_t(std::max_element(row, row + k) - row);
      index_t truth;
      if (t.labels)
        truth = t.labels[i];
      else
        truth = index_t(std::max_element(t.dense + i * k, t.dense + (i + 1) * k) -
                        (t.dense + i * k));
      r.correct += pred == truth;
    }
    r.predictions += double(nb);
  } else if (loss == Loss::binary_cross_entropy) {
    for (index_t i = 0; i < nb * k; ++i) r.correct += (p[i] > T(0.5)) == (t.dense[i] > T(0.5));
    r.predictions += double(nb * k);
  }
}

}  // namespace

template <class T>
void train_epoch(Network<T>& net, const T* X, const Target<T>& t, index_t rows,
                 const int64_t* perm, index_t batch_size, index_t start, index_t max_batches,
                 const std::function<bool()>& poll, EpochResult& r) {
  if (batch_size <= 0) throw std::invalid_argument("batch_size: must be positive");
  if (rows <= 0 || start >= rows) return;
  const index_t bs = std::min(batch_size, rows);
  Workspace<T>& ws = net.workspace();
  ws.reserve(bs);
  const index_t L = net.num_layers(), in = net.input_size(), k = net.output_size();
  r.grad_norm_sum.resize(std::size_t(L), 0.0);
  EpochProgress& progress = net.trainer().progress();
  progress.publish(r);
  index_t done = 0;
  for (index_t pos = start; pos < rows && (max_batches < 0 || done < max_batches); pos += bs) {
    const index_t nb = std::min(bs, rows - pos);
    const T* xb = X + pos * in;
    Target<T> tb = t;
    if (perm) {
      tb = gather(ws, X, t, perm, pos, nb, in, k);
      xb = ws.batch_x();
      prefetch_rows(X, perm, pos + nb, std::min(bs, rows - (pos + nb)), in);
    } else {
      if (t.labels) tb.labels = t.labels + pos;
      if (t.dense) tb.dense = t.dense + pos * k;
      if (t.sample_weight) tb.sample_weight = t.sample_weight + pos;
    }
    const StepResult s = net.train_step(xb, tb, nb);
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
    for (index_t l = 0; l < L; ++l)
      r.grad_norm_sum[std::size_t(l)] += std::sqrt(net.trainer().grad_sumsq(l));
    count_correct(net.loss_kind(), ws.layer(L - 1).y, tb, nb, k, r);
    progress.publish(r);
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

template class Trainer<float>;
template class Trainer<double>;
template void train_epoch<float>(Network<float>&, const float*, const Target<float>&, index_t,
                                 const int64_t*, index_t, index_t, index_t,
                                 const std::function<bool()>&, EpochResult&);
template void train_epoch<double>(Network<double>&, const double*, const Target<double>&, index_t,
                                  const int64_t*, index_t, index_t, index_t,
                                  const std::function<bool()>&, EpochResult&);

}  // namespace fastmlp
