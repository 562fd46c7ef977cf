// A feed-forward network: its layers, and the three rooms it is built from
//   parameters.h  the flat parameter and gradient buffers, each layer's named blocks
//   workspace.h   each layer's named buffers for a pass, grown to the largest batch
//   trainer.h     optimizer state, regularization, counters, statistics, the epoch loop
// This file holds the passes that walk the layers (forward, loss, backward)
// and the training step built from them. Python twin:
// fastmlp.reference.Network; bound as _core.Network32 / Network64.
//
// Layer l, hidden or not:   lin = x W^T + b
//   batch_norm:             z = BN(lin)   (batch statistics in training, running ones in eval)
//   otherwise:              z = lin
//                           y = act(z)
//   dropout (training):     out = y * mask   (inverted dropout, mask from (seed, step, l))
//   otherwise:              out = y
// and out is the next layer's x. For cross_entropy / binary_cross_entropy the
// last layer's y is softmax(z) / sigmoid(z) and the loss returns dL/dz.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/aligned.h"
#include "common/types.h"
#include "gemm/gemm.h"
#include "network/guard.h"
#include "network/layer.h"
#include "network/parameters.h"
#include "network/trainer.h"
#include "network/workspace.h"
#include "nn/losses.h"

namespace fastmlp {

// One process's share of a data-parallel step (fastmlp.distributed): every
// process runs the same step on its own rows of one global batch, and the
// gradients are summed across them before finish_step. The rows are cut into
// pieces whose gradients and batch-norm sums are kept apart, so that the
// caller can combine them in an order that does not depend on how many
// processes hold them (the reproducible reduction).
struct DataParallel {
  index_t row0 = 0;             // row of the global batch that local row 0 is (keys dropout)
  index_t rows = 0;             // rows of the global batch
  double den = 0.0;             // the global batch's loss denominator (losses.h)
  std::vector<index_t> bounds;  // local pieces: 0 = bounds[0] < ... < bounds.back() = n
  // With total_pieces > 0, the local pieces are pieces first_piece, ... of
  // the global batch's total_pieces, which the caller adds in the binary tree
  // that splits [a, b) at (a + b) / 2; the nodes lying wholly within this
  // process's pieces are added here, each layer's right after its gradients
  // are computed (piece a's buffer then holds the sum of [a, b)).
  index_t first_piece = 0, total_pieces = 0;
  // Called at each batch-norm layer, forward (twice) and backward, by every
  // process in the same order: partials holds this process's (pieces, width)
  // partial sums (pieces may be 0: a process with no rows in this batch still
  // takes part); it writes the global batch's sums into out (width).
  std::function<void(const double* partials, index_t pieces, index_t width, double* out)>
      reduce;
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

  Parameters<T>& parameters() { return params_; }
  const Parameters<T>& parameters() const { return params_; }
  Workspace<T>& workspace() { return ws_; }
  Trainer<T>& trainer() { return trainer_; }
  const Trainer<T>& trainer() const { return trainer_; }
  // Who may use the network now (guard.h): the callers take it, the passes
  // below assume it is held.
  Guard& guard() const { return guard_; }

  // Initializes the parameters (Parameters::initialize); the seed also keys
  // the dropout masks.
  void initialize(const std::vector<Init>& schemes, uint64_t seed);
  uint64_t seed() const { return seed_; }

  // The operands of the three GEMMs per layer (forward x W^T with its bias
  // and activation epilogue, dW = dZ^T x, dX = dZ W): native, or bf16 for
  // the mixed_bfloat16 policy (float32 master weights, gradients, optimizer
  // state, statistics, loss and reductions; only the GEMM operands are
  // rounded, while packed). Float64 networks refuse bf16
  // (std::invalid_argument). Default: native.
  void set_gemm_precision(GemmPrecision prec);
  GemmPrecision gemm_precision() const { return prec_; }
  // mixed_bfloat16: whether a training forward writes each layer's output
  // as the next layer's bf16 weight-gradient panel (default on; the values
  // are the same either way, which tests check by turning it off).
  void set_input_panels(bool on) { input_panels_on_ = on; }
  bool input_panels() const { return input_panels_on_; }
  // With bf16 GEMMs each layer's weights are packed once per change into two
  // panels (gemm.h Bf16Panel: W^T's for the forward product, W's for dX),
  // which the products read in place instead of packing W in each of them.
  // The core knows when it writes the weights itself (initialize, the
  // optimizer step); a writer outside it holds a handle while it can write
  // (the binding: one per live NumPy view of the weights) and marks them
  // changed when it lets go. A pass entered while any handle is held starts
  // from weights_changed(), as does one after a handle was dropped.
  void weights_changed() { panels_fresh_.store(false, std::memory_order_relaxed); }
  bool panels_fresh() const { return panels_fresh_.load(std::memory_order_relaxed); }
  void add_weight_handle() {
    weight_handles_.fetch_add(1, std::memory_order_relaxed);
    weights_changed();
  }
  void drop_weight_handle() {
    weights_changed();
    weight_handles_.fetch_sub(1, std::memory_order_relaxed);
  }
  int weight_handles() const { return weight_handles_.load(std::memory_order_relaxed); }

  // The step's phases 1-3 (trainer.h lists them all).
  //
  // 1. Runs the layers on x (n, in). Returns the network output (n, out)
  // inside the workspace: probabilities for the classification losses, the
  // predicted means exp(z) for poisson.
  // training: batch statistics and the dropout masks of the trainer's next
  // step (running statistics are not updated: only update() does that).
  const T* forward(const T* x, index_t n, bool training = false);
  // 2. The mean loss of the last forward's n rows against t, without the
  // penalty; writes dL/d(output) into the output layer's d.
  double loss_gradient(const Target<T>& t, index_t n);
  // 3. Every layer's gradient into parameters().grads(), from the output
  // layer's d; x is the batch the last forward ran on.
  void backward(const T* x, index_t n);

  // Phases 1-3 in training mode (and the dead-unit statistics): returns the
  // batch's mean loss without the penalty; the gradient buffer holds the
  // data term of d(loss)/d(params). This is where a data-parallel step hands
  // over to its all-reduce, then to finish_step.
  double forward_backward(const T* x, const Target<T>& t, index_t n);

  // Mean loss of a batch plus the penalty, without touching the gradients.
  double loss(const T* x, const Target<T>& t, index_t n, bool training = false);
  // Phases 1-4 without clipping: the gradient buffer receives
  // d(loss)/d(params), penalty included, and the trainer the per-layer norms.
  double compute_gradients(const T* x, const Target<T>& t, index_t n);
  // Phases 1-5. A non-finite loss or gradient leaves parameters, optimizer
  // state and running statistics unchanged (the result says so).
  StepResult train_step(const T* x, const Target<T>& t, index_t n);
  // Phases 4-5 after forward_backward on n rows, as train_step runs them.
  StepResult finish_step(double loss, index_t n);
  // finish_step on one shard [begin, end) of the flat buffers
  // (Trainer::finish_span): this process steps only its shard of the
  // parameters and optimizer state; the caller gathers the other shards'
  // new values from the processes that own them.
  StepResult finish_shard(double loss, index_t n, index_t begin, index_t end,
                          const typename Trainer<T>::SpanReduce& reduce);
  // Phases 1-3 of one process's share of a data-parallel step on its n rows
  // (see DataParallel): the loss terms and gradients are those of the global
  // batch's mean loss restricted to these rows; batch normalization uses the
  // global batch's statistics (dp.reduce) and dropout its masks. Piece 0's
  // gradient goes into parameters().grads(), piece p > 0's into
  // piece_grad(p). Returns each piece's
  // loss terms summed over the global denominator. finish_step(loss,
  // dp.rows) completes the step once the caller has summed the gradients.
  std::vector<double> forward_backward_pieces(const T* x, const Target<T>& t, index_t n,
                                              const DataParallel& dp);
  // Piece q's gradient buffer (q >= 1; piece 0's is parameters().grads()),
  // of the flat layout; each stays where it is once allocated.
  T* piece_grad(index_t q) { return piece_grads_[std::size_t(q - 1)].data(); }
  index_t piece_grad_count() const { return index_t(piece_grads_.size()); }

  // The rows of a forward_backward whose step is not finished yet, or -1
  // (any other pass in between clears it: its batch statistics are not the
  // ones the gradients were taken with).
  index_t pending_rows() const { return pending_rows_; }

 private:
  // The mean loss of the last forward's output against t; with gradient,
  // dL/d(output) into the output layer's d.
  double output_loss(const Target<T>& t, index_t n, bool gradient);
  bool dropout_on(index_t l, bool training) const {
    return training && layers_[l].dropout > 0.0 && l + 1 < num_layers();
  }
  const T* layer_input(const T* x, index_t l) const {
    return l == 0 ? x : ws_.layer(l - 1).out;
  }
  // Layer l's panel for the forward (W^T) or the dX (W) product, packed
  // first if the weights changed since; nullptr without bf16 GEMMs.
  const Bf16Panel* weight_panel(index_t l, bool forward);
  // Sizes the panels for the active bf16 kernel and lists the work of a
  // pass over the parameters in panel_tasks_.
  void prepare_panels();
  // Rows r0..r1 of layer l's W into both of its panels.
  void pack_rows(index_t l, index_t r0, index_t r1);
  void pack_panels();
  // Phase 5 with bf16 GEMMs: the optimizer step and the panels of the
  // updated weights in one pass (Trainer::update_span).
  void update_and_pack(index_t n);

  // The data-parallel share forward and backward are running, or nullptr.
  const DataParallel* dp_ = nullptr;
  std::vector<double> dp_sums_, dp_total_, dp_stats_;
  std::vector<index_t> dp_groups_;  // the tree nodes gemm_pieces forms (piece_tree_groups)
  std::vector<T*> dp_cw_;
  std::vector<AlignedBuffer<T>> piece_grads_;
  void forward_bn_synced(index_t l, index_t n);
  void backward_pieces(const T* x, index_t n);
  // w_done: the W blocks are added already (gemm_pieces), only the rest.
  void fold_pieces(index_t l, index_t a, index_t b, bool w_done);


  std::vector<LayerSpec> layers_;
  Loss loss_;
  uint64_t seed_ = 0;
  GemmPrecision prec_ = GemmPrecision::native;
  index_t pending_rows_ = -1;
  // Per layer: the panel words of W^T and of W (the latter empty for layer
  // 0, which has no dX), their views, and whether they hold the weights now.
  std::vector<AlignedBuffer<std::uint32_t>> panel_words_[2];
  std::vector<Bf16Panel> panels_[2];
  // A W row block (l >= 0: rows [begin, end) of layer l) or a span of the
  // flat buffer between them (l < 0: elements [begin, end)).
  struct PanelTask {
    index_t l, begin, end;
  };
  std::vector<PanelTask> panel_tasks_;
  // mixed_bfloat16 training: layer l's input (l >= 1) in bf16 as the B panel
  // of its weight gradient (k = the batch's rows), written by layer l - 1's
  // forward epilogue when that layer's y is the input itself (no batch norm,
  // no dropout); .k is the rows of the last forward that wrote it, 0: none.
  std::vector<AlignedBuffer<std::uint32_t>> input_panel_words_;
  std::vector<Bf16Panel> input_panels_;
  bool input_panels_on_ = true;  // set_input_panels (tests compare both ways)
  std::uint32_t* input_panel_for(index_t l, index_t n);
  std::atomic<bool> panels_fresh_{false};
  std::atomic<int> weight_handles_{0};
  Parameters<T> params_;
  Workspace<T> ws_;
  Trainer<T> trainer_;
  mutable Guard guard_;
};

}  // namespace fastmlp
