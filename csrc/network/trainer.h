// The third room of a network: training. The optimizer's state (buffers of
// the parameters' layout), the regularization, the step counters, the
// gradient and unit statistics, the phases of a step that come after the
// backward pass, and the epoch loop. Python twins: fastmlp.reference's
// optimizer_step, l1_l2_gradient, clip_grad_value and clip_grad_norm, and
// batch_norm_forward's running update.
//
// A training step, phase by phase (Network::train_step runs them in order):
//   1 forward              Network::forward(x, n, training=true)
//   2 loss                 Network::loss_gradient: the loss and dL/d(output)
//   3 backward             Network::backward: every layer's gradient into grads()
//     [a data-parallel step all-reduces grads() and the loss here]
//   4 post-processing      Trainer::penalize: L1/L2 penalty (loss and gradient),
//                          per-layer norms; Trainer::check_and_clip: the
//                          finiteness check, clipping
//   5 update               Trainer::update: optimizer step, batch-norm running
//                          statistics, counters
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/aligned.h"
#include "common/types.h"
#include "network/layer.h"
#include "network/parameters.h"
#include "network/workspace.h"
#include "nn/losses.h"
#include "optim/optimizer.h"

namespace fastmlp {

// Between backward and the optimizer step. Zero means off.
struct Regularization {
  double l1 = 0.0, l2 = 0.0;  // loss += l1 sum|W| + l2 sum W^2 over every W (not b, gamma, beta)
  double clip_value = 0.0;    // clamp every gradient element to [-v, v]  (applied first)
  double clip_norm = 0.0;     // then scale all gradients so that their global 2-norm <= max
};

// What a training step reports.
struct StepResult {
  double loss = 0.0;       // batch loss, penalty included
  bool ok = true;          // loss and every gradient finite; the step was taken
  index_t bad_layer = -1;  // when !ok: the highest layer whose gradient is not finite, or
                           // the one with the largest gradient norm if all are finite
};

// What an epoch (or a part of one: train_epoch continues the sums of the
// result it is given, so that a chunked epoch adds exactly as a whole one).
struct EpochResult {
  double loss_sum = 0.0;     // sum over batches of (batch loss * batch rows)
  index_t rows = 0;          // rows trained on
  index_t batches = 0;
  double correct = 0.0;      // classification: predictions that matched (training mode)
  double predictions = 0.0;  //   ... out of this many
  std::vector<double> grad_norm_sum;  // per layer: sum over batches of the layer's gradient norm
  bool interrupted = false;  // poll() asked to stop (Ctrl-C)
  bool diverged = false;     // a batch was not finite; parameters are those before it
  index_t bad_batch = -1;
  index_t bad_layer = -1;
  double bad_loss = 0.0;
};

// The running epoch as another thread may read it while train_epoch runs
// with the GIL released (the progress bar): the epoch's batches, rows and
// loss sum so far, published after each batch. Copying a Trainer copies the
// values (atomics themselves do not copy).
struct EpochProgress {
  std::atomic<int64_t> batches{0};
  std::atomic<int64_t> rows{0};
  std::atomic<double> loss_sum{0.0};

  EpochProgress() = default;
  EpochProgress(const EpochProgress& o) { *this = o; }
  EpochProgress& operator=(const EpochProgress& o) {
    batches.store(o.batches.load(std::memory_order_relaxed), std::memory_order_relaxed);
    rows.store(o.rows.load(std::memory_order_relaxed), std::memory_order_relaxed);
    loss_sum.store(o.loss_sum.load(std::memory_order_relaxed), std::memory_order_relaxed);
    return *this;
  }
  void publish(const EpochResult& r) {
    loss_sum.store(r.loss_sum, std::memory_order_relaxed);
    rows.store(r.rows, std::memory_order_relaxed);
    batches.store(r.batches, std::memory_order_release);
  }
};

template <class T>
class Network;

template <class T>
class Trainer {
 public:
  Trainer(const std::vector<LayerSpec>& layers, index_t buffer_size);

  // Optimizer: a new configuration starts from fresh state (step 0); set_lr
  // changes the learning rate only (schedules).
  void set_optimizer(const OptConfig& cfg);
  const OptConfig& optimizer() const { return opt_; }
  void set_lr(double lr);
  int optimizer_state_count() const { return n_state_; }
  T* optimizer_state(int i) { return state_[i].data(); }
  int64_t optimizer_steps() const { return opt_steps_; }
  void set_optimizer_steps(int64_t s) { opt_steps_ = s; }

  void set_regularization(const Regularization& r);
  const Regularization& regularization() const { return reg_; }

  // Training steps taken; keys the dropout masks of the next step.
  int64_t step_count() const { return steps_; }
  void set_step_count(int64_t s) { steps_ = s; }

  // Phase 4, first half: adds the L1/L2 penalty to the gradients and keeps
  // each layer's squared gradient norm. Returns `loss` plus the penalty.
  double penalize(Parameters<T>& p, double loss);
  // Phase 4, second half: whether the loss and every gradient are finite
  // (if not, the layer to blame: the step must not be taken) and, if so,
  // clipping by value, then by global norm.
  StepResult check_and_clip(Parameters<T>& p, double loss);
  // Phase 5. One optimizer step on every parameter, the batch-norm running
  // statistics from this batch's (n rows) statistics, the counters.
  void update(Parameters<T>& p, Workspace<T>& ws, index_t n);
  // Phase 5 in parts, for a caller that works on each part while it is still
  // in cache (Network: the bf16 panels of the weight rows just updated):
  // update_span on disjoint spans that cover [0, p.size()), in any order and
  // from any threads, then finish_update once. The optimizer is element-wise,
  // so the result is update()'s, bit for bit.
  void update_span(Parameters<T>& p, index_t begin, index_t end);
  void finish_update(Parameters<T>& p, Workspace<T>& ws, index_t n);

  // Phases 4-5 on one shard [begin, end) of the flat buffers, for a
  // data-parallel step in which each process steps the optimizer on its own
  // shard only (fastmlp.distributed, reduction="sharded"): the gradient in
  // the shard is already the global batch's, the rest is not read. The
  // per-layer penalties and squared gradient norms are partial sums over
  // the shard; reduce(partials, width, out) turns this process's partials
  // into the sums over every shard (every process calls it alike, twice when
  // clipping both by value and by norm), so that every process takes the
  // same decision (finite or not, the clipping coefficient). Values and
  // optimizer state outside the shard are not touched; the counters and
  // running statistics advance as in update(). With one shard covering the
  // whole buffer and reduce the identity, the result is finish_step's, bit
  // for bit.
  using SpanReduce = std::function<void(const double* partials, index_t width, double* out)>;
  StepResult finish_span(Parameters<T>& p, Workspace<T>& ws, double loss, index_t n,
                         index_t begin, index_t end, const SpanReduce& reduce);

  // The L1/L2 penalty of the current weights (0 without it).
  double penalty(const Parameters<T>& p) const;
  // Squared 2-norm of layer l's gradient (all its blocks) after the last penalize.
  double grad_sumsq(index_t l) const { return grad_sumsq_[l]; }

  // Dead units: after reset_unit_activity(), record_unit_activity marks the
  // units of each ReLU hidden layer that gave a positive output for some row
  // of the last forward; dead_fraction is the share of units never marked.
  void record_unit_activity(const Workspace<T>& ws, index_t n);
  void reset_unit_activity();
  double dead_fraction(index_t l) const;

  // The running epoch (see EpochProgress): written by train_epoch only.
  EpochProgress& progress() { return progress_; }
  const EpochProgress& progress() const { return progress_; }

 private:
  // The per-layer penalties (added to the gradients) and squared gradient
  // norms over [begin, end) of the flat buffers; penalize's with the whole.
  void penalize_span(Parameters<T>& p, index_t begin, index_t end, double* pen, double* sumsq);
  // check_and_clip on [begin, end), the squared norm after clipping by value
  // summed over every shard by reduce (nullptr: this one is the whole).
  StepResult check_and_clip_span(Parameters<T>& p, double loss, index_t begin, index_t end,
                                 const SpanReduce* reduce);

  std::vector<LayerSpec> layers_;
  OptConfig opt_;
  int n_state_ = 0;
  index_t buffer_size_ = 0;
  AlignedBuffer<T> state_[3];
  int64_t opt_steps_ = 0;
  int64_t steps_ = 0;
  Regularization reg_;
  std::vector<double> grad_sumsq_;
  std::vector<double> span_partial_, span_global_;  // penalize / finish_span scratch
  std::vector<std::vector<unsigned char>> alive_;
  EpochProgress progress_;
};

// The epoch loop (the trainer's, written as a function of the whole network
// whose steps it runs): mini-batches of batch_size from row `start` on, in the
// order of perm (nullptr: natural order), for at most max_batches batches
// (< 0: to the end), each gathered into the workspace and trained on by
// net.train_step. Accumulates into r. poll() is called between batches; true
// stops. A batch that is not finite stops the loop with r.diverged and the
// parameters as they were before it.
template <class T>
void train_epoch(Network<T>& net, const T* X, const Target<T>& t, index_t rows,
                 const int64_t* perm, index_t batch_size, index_t start, index_t max_batches,
                 const std::function<bool()>& poll, EpochResult& r);

// A permutation of 0..n-1 drawn from (seed, epoch) by Fisher-Yates over the
// counter-based generator: the same for any thread count or platform.
void permutation(int64_t* out, index_t n, uint64_t seed, uint32_t epoch);

}  // namespace fastmlp
