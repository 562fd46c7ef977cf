// A feed-forward network: layer specs, one flat parameter buffer, one flat
// gradient buffer of the same layout, a workspace that grows to the largest
// batch seen, and the optimizer state.
// Python twin: fastmlp.reference.Network.
//
// Parameter layout, layer after layer: W_l (out_l x in_l, row-major, as
// torch.nn.Linear) then b_l (out_l). Each block starts on a 64-byte boundary
// so that every W row block can be loaded aligned. The buffers are allocated
// once in the constructor and never move, so views handed to Python stay valid.
//
// Workspace per layer l (capacity rows each): z_l and y_l = act_l(z_l) (y_l
// aliases z_l when act_l is the identity), and d_l, which holds dL/dy_l and
// is overwritten in place by dL/dz_l during backward. For cross_entropy and
// binary_cross_entropy the last layer's y is softmax(z) / sigmoid(z) and d_L
// receives dL/dz directly from the loss.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/aligned.h"
#include "common/types.h"
#include "nn/losses.h"
#include "optim/sgd.h"

namespace fastmlp {

struct LayerSpec {
  index_t in = 0, out = 0;
  Act act = Act::identity;
};

struct EpochResult {
  double loss_sum = 0.0;    // sum over batches of (batch loss * batch rows)
  index_t rows = 0;         // rows trained on
  index_t batches = 0;
  bool interrupted = false; // poll() asked to stop (Ctrl-C)
  bool diverged = false;    // a batch loss was not finite; parameters are those before it
  index_t bad_batch = -1;
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
  index_t buffer_size() const { return params_.size(); }

  // Weights by `scheme` per layer (drawn from the counter-based generator
  // keyed by seed, layer and element), biases zero.
  void initialize(const std::vector<Init>& schemes, uint64_t seed);

  // Runs the layers on x (n, in). Returns the network output (n, out) inside
  // the workspace: probabilities for the classification losses.
  const T* forward(const T* x, index_t n);
  // Mean loss of the batch, without touching the gradients.
  double loss(const T* x, const Target<T>& t, index_t n);
  // Forward and backward: the gradient buffer receives d(mean loss)/d(params).
  double compute_gradients(const T* x, const Target<T>& t, index_t n);
  // compute_gradients + one optimizer step. A non-finite loss leaves the
  // parameters unchanged and returns that loss.
  double train_step(const T* x, const Target<T>& t, index_t n);
  // One pass over X (rows, in) in mini-batches of batch_size, in the order of
  // perm (nullptr: natural order). poll() is called between batches; true stops.
  EpochResult train_epoch(const T* X, const Target<T>& t, index_t rows, const int64_t* perm,
                          index_t batch_size, const std::function<bool()>& poll);

  // Per-layer workspace views of the last forward/backward (rows = last n).
  const T* z(index_t l) const { return z_[l]; }
  const T* y(index_t l) const { return y_[l]; }
  const T* d(index_t l) const { return d_[l]; }
  index_t last_rows() const { return last_n_; }

  void set_sgd(const SgdConfig<T>& cfg);
  const SgdConfig<T>& sgd() const { return sgd_; }
  int64_t step_count() const { return steps_; }
  void set_step_count(int64_t s) { steps_ = s; }
  // Momentum buffer (same layout as params), allocated when momentum != 0.
  T* momentum_buffer() { return momentum_.size() ? momentum_.data() : nullptr; }

 private:
  void reserve_rows(index_t n);
  void backward(const T* x, const Target<T>& t, index_t n, double* loss_out);

  std::vector<LayerSpec> layers_;
  Loss loss_;
  index_t n_params_ = 0;
  std::vector<index_t> w_off_, b_off_;
  AlignedBuffer<T> params_, grads_;

  // workspace
  index_t cap_ = 0, last_n_ = 0;
  AlignedBuffer<T> ws_;
  std::vector<T*> z_, y_, d_;
  AlignedBuffer<T> xb_, tb_;
  AlignedBuffer<int32_t> lb_;
  AlignedBuffer<double> row_loss_;

  // optimizer
  SgdConfig<T> sgd_;
  AlignedBuffer<T> momentum_;
  int64_t steps_ = 0;
  bool momentum_ready_ = false;
};

// A permutation of 0..n-1 drawn from (seed, epoch) by Fisher-Yates over the
// counter-based generator: the same for any thread count or platform.
void permutation(int64_t* out, index_t n, uint64_t seed, uint32_t epoch);

}  // namespace fastmlp
