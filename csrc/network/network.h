// A feed-forward network: layer specs, one flat parameter buffer, one flat
// gradient buffer of the same layout, a workspace that grows to the largest
// batch seen, and the optimizer state (buffers of the same layout again).
// Python twin: fastmlp.reference.Network.
//
// Parameter layout, layer after layer: W_l (out_l x in_l, row-major, as
// torch.nn.Linear), b_l (out_l), and for a batch-normalized layer gamma_l and
// beta_l (out_l each). Each block starts on a 64-byte boundary so that every
// W row block can be loaded aligned; the padding stays zero in every buffer.
// The buffers are allocated once in the constructor and never move, so views
// handed to Python stay valid. Batch-norm running statistics are not
// parameters and live in a buffer of their own.
//
// Layer l, hidden or not:   lin = x W^T + b
//   batch_norm:             z = BN(lin)   (batch statistics in training, running ones in eval)
//   otherwise:              z = lin
//                           y = act(z)
//   dropout (training):     out = y * mask   (inverted dropout, mask from (seed, step, l))
//   otherwise:              out = y
// and out is the next layer's x. For cross_entropy / binary_cross_entropy the
// last layer's y is softmax(z) / sigmoid(z) and the loss returns dL/dz.
//
// Workspace per layer (capacity rows each): z, y (aliases z for the identity),
// d (dL/d out, overwritten in place by dL/dy, dL/dz, dL/dlin during backward),
// and when used: lin and xhat (batch norm), mask and the dropped output.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/aligned.h"
#include "common/types.h"
#include "nn/losses.h"
#include "optim/optimizer.h"

namespace fastmlp {

struct LayerSpec {
  index_t in = 0, out = 0;
  Act act = Act::identity;
  double dropout = 0.0;     // rate p of inverted dropout on the layer's output (hidden layers)
  bool batch_norm = false;  // batch normalization between the linear map and act (hidden layers)
};

// Between backward and the optimizer step. Zero means off.
struct Regularization {
  double l1 = 0.0, l2 = 0.0;  // loss += l1 sum|W| + l2 sum W^2 over every W (not b, gamma, beta)
  double clip_value = 0.0;    // clamp every gradient element to [-v, v]  (applied first)
  double clip_norm = 0.0;     // then scale all gradients so that their global 2-norm <= max
};

// What a training step reports.
struct StepResult {
  double loss = 0.0;         // batch loss, penalty included
  bool ok = true;            // loss and every gradient finite; the step was taken
  index_t bad_layer = -1;    // when !ok: the highest layer whose gradient is not finite, or
                             // the one with the largest gradient norm if all are finite
};

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

template <class T>
class Network {
 public:
  Network(std::vector<LayerSpec> layers, Loss loss);

  index_t num_layers() const { return index_t(layers_.size()); }
  const LayerSpec& layer(index_t l) const { return layers_[l]; }
  Loss loss_kind() const { return loss_; }
  index_t input_size() const { return layers_.front().in; }
  index_t output_size() const { return layers_.back().out; }

  T* params() { return params_.data(); }
  T* grads() { return grads_.data(); }
  index_t num_params() const { return n_params_; }
  index_t w_offset(index_t l) const { return w_off_[l]; }
  index_t b_offset(index_t l) const { return b_off_[l]; }
  index_t gamma_offset(index_t l) const { return g_off_[l]; }  // -1 without batch norm
  index_t beta_offset(index_t l) const { return be_off_[l]; }
  index_t buffer_size() const { return params_.size(); }
  // Batch-norm running statistics of layer l (out_l each); nullptr without batch norm.
  T* running_mean(index_t l) { return rs_off_[l] < 0 ? nullptr : stats_.data() + rs_off_[l]; }
  T* running_var(index_t l) { return rs_off_[l] < 0 ? nullptr : stats_.data() + rs_off_[l] + layers_[l].out; }

  // Weights by `scheme` per layer (drawn from the counter-based generator
  // keyed by seed, layer and element), biases and beta zero, gamma one,
  // running statistics reset. The seed also keys the dropout masks.
  void initialize(const std::vector<Init>& schemes, uint64_t seed);
  uint64_t seed() const { return seed_; }
  void set_seed(uint64_t s) { seed_ = s; }

  // Runs the layers on x (n, in). Returns the network output (n, out) inside
  // the workspace: probabilities for the classification losses. training:
  // batch statistics and the dropout masks of the current step (running
  // statistics are not updated: only a training step does that).
  const T* forward(const T* x, index_t n, bool training = false);
  // Mean loss of the batch plus the penalty, without touching the gradients.
  double loss(const T* x, const Target<T>& t, index_t n, bool training = false);
  // Training-mode forward and backward, penalty included: the gradient buffer
  // receives d(loss)/d(params), before clipping. Per-layer squared gradient
  // norms are kept (grad_sumsq).
  double compute_gradients(const T* x, const Target<T>& t, index_t n);
  // compute_gradients, clipping, one optimizer step, running statistics.
  // A non-finite loss or gradient leaves parameters, optimizer state and
  // running statistics unchanged.
  StepResult train_step(const T* x, const Target<T>& t, index_t n);
  // Mini-batches of batch_size from row `start` on, in the order of perm
  // (nullptr: natural order), for at most max_batches batches (< 0: to the
  // end). Accumulates into r. poll() is called between batches; true stops.
  void train_epoch(const T* X, const Target<T>& t, index_t rows, const int64_t* perm,
                   index_t batch_size, index_t start, index_t max_batches,
                   const std::function<bool()>& poll, EpochResult& r);

  // Per-layer workspace views of the last forward/backward (rows = last n).
  const T* z(index_t l) const { return z_[l]; }
  const T* y(index_t l) const { return y_[l]; }
  const T* d(index_t l) const { return d_[l]; }
  index_t last_rows() const { return last_n_; }
  double grad_sumsq(index_t l) const { return gsq_[l]; }

  // Dead units: after reset_unit_activity(), every training forward marks the
  // units of each layer that gave a positive output for some row; dead_fraction
  // is the share of units never marked.
  void reset_unit_activity();
  double dead_fraction(index_t l) const;

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

  // Training steps taken (keys the dropout masks).
  int64_t step_count() const { return steps_; }
  void set_step_count(int64_t s) { steps_ = s; }

 private:
  void reserve_rows(index_t n);
  void backward(const T* x, const Target<T>& t, index_t n, double* loss_out);
  double penalty_value() const;
  bool dropout_on(index_t l, bool training) const {
    return training && layers_[l].dropout > 0.0 && l + 1 < num_layers();
  }
  const T* layer_input(const T* x, index_t l) const { return l == 0 ? x : out_[l - 1]; }

  std::vector<LayerSpec> layers_;
  Loss loss_;
  index_t n_params_ = 0;
  std::vector<index_t> w_off_, b_off_, g_off_, be_off_, end_off_, rs_off_;
  AlignedBuffer<T> params_, grads_, stats_;
  uint64_t seed_ = 0;
  static constexpr double kBnEps = 1e-5, kBnMomentum = 0.1;

  // workspace
  index_t cap_ = 0, last_n_ = 0;
  bool last_training_ = false;
  AlignedBuffer<T> ws_;
  std::vector<T*> z_, y_, d_, lin_, xhat_, mask_, drop_;
  std::vector<const T*> out_;
  AlignedBuffer<T> bnv_;               // per BN layer: mean, var, invstd (out each)
  std::vector<index_t> bnv_off_;
  AlignedBuffer<T> xb_, tb_, swb_;
  AlignedBuffer<int32_t> lb_;
  AlignedBuffer<double> row_loss_;
  AlignedBuffer<T> lse_;  // per-row log-sum-exp of the last forward (cross_entropy)
  std::vector<double> gsq_;
  std::vector<std::vector<unsigned char>> alive_;

  // optimizer and regularization
  OptConfig opt_;
  int n_state_ = 0;
  AlignedBuffer<T> state_[3];
  int64_t opt_steps_ = 0;
  int64_t steps_ = 0;
  Regularization reg_;
};

// A permutation of 0..n-1 drawn from (seed, epoch) by Fisher-Yates over the
// counter-based generator: the same for any thread count or platform.
void permutation(int64_t* out, index_t n, uint64_t seed, uint32_t epoch);

}  // namespace fastmlp
