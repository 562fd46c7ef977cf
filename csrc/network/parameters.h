// The first room of a network: its parameters. All of them live in one flat
// buffer, the gradients in a second of the same layout, so that an optimizer
// step is one fused pass and a gradient all-reduce one call; Python sees each
// layer's blocks as zero-copy NumPy views (the buffers are allocated once and
// never move). Batch-norm running statistics are not trained, and live in a
// buffer of their own. Python twin: the weights/biases/gamma/beta lists of
// fastmlp.reference.Network.
//
// Layout, layer after layer: W_l (out_l x in_l, row-major), b_l (out_l), and
// for a batch-normalized layer gamma_l and beta_l (out_l each). Each block
// starts on a 64-byte boundary, so every W row block loads aligned; the
// padding of the values and the gradients stays zero (optimizer state of the
// same layout starts at its initial value there, e.g. Adagrad's
// initial_accumulator, and no parameter reads it).
#pragma once

#include <cstdint>
#include <vector>

#include "common/aligned.h"
#include "common/types.h"
#include "network/layer.h"

namespace fastmlp {

// Where layer l's blocks start in the flat buffers; -1: the layer has none.
struct ParamOffsets {
  index_t W = 0, b = 0;
  index_t gamma = -1, beta = -1;  // batch norm only
  index_t end = 0;                // one past the layer's last block (padding included)
};

// One layer's blocks inside one flat buffer (the values or the gradients).
template <class T>
struct LayerTensors {
  T* W = nullptr;      // out x in
  T* b = nullptr;      // out
  T* gamma = nullptr;  // out, batch norm only
  T* beta = nullptr;   // out, batch norm only
};

template <class T>
class Parameters {
 public:
  explicit Parameters(const std::vector<LayerSpec>& layers);

  index_t num_layers() const { return index_t(layers_.size()); }
  const LayerSpec& spec(index_t l) const { return layers_[l]; }
  const ParamOffsets& offsets(index_t l) const { return offsets_[l]; }
  index_t size() const { return values_.size(); }  // buffer length, padding included
  index_t count() const { return count_; }         // trainable numbers

  T* values() { return values_.data(); }
  const T* values() const { return values_.data(); }
  T* grads() { return grads_.data(); }
  const T* grads() const { return grads_.data(); }
  LayerTensors<T> layer(index_t l) { return at(values_.data(), l); }
  LayerTensors<const T> layer(index_t l) const { return at(values_.data(), l); }
  LayerTensors<T> grad(index_t l) { return at(grads_.data(), l); }
  // Layer l's blocks in another buffer of the same layout (a data-parallel
  // piece's gradient).
  LayerTensors<T> blocks_in(T* base, index_t l) const { return at(base, l); }

  // Batch-norm running statistics of layer l (out_l each); nullptr without batch norm.
  T* running_mean(index_t l) { return stats_at(l, 0); }
  T* running_var(index_t l) { return stats_at(l, 1); }

  // Weights by `scheme` per layer, drawn from the counter-based generator
  // keyed by (seed, layer, element), so the same on every platform and for
  // any thread count; biases and beta zero, gamma one, running statistics
  // reset (mean 0, variance 1).
  void initialize(const std::vector<Init>& schemes, uint64_t seed);

 private:
  template <class U>
  LayerTensors<U> at(U* base, index_t l) const {
    const ParamOffsets& o = offsets_[l];
    return {base + o.W, base + o.b, o.gamma < 0 ? nullptr : base + o.gamma,
            o.beta < 0 ? nullptr : base + o.beta};
  }
  T* stats_at(index_t l, int which) {
    return stats_offset_[l] < 0 ? nullptr
                                : stats_.data() + stats_offset_[l] + which * layers_[l].out;
  }

  std::vector<LayerSpec> layers_;
  std::vector<ParamOffsets> offsets_;
  std::vector<index_t> stats_offset_;  // running mean then variance; -1 without batch norm
  index_t count_ = 0;
  AlignedBuffer<T> values_, grads_, stats_;
};

}  // namespace fastmlp
