// The second room of a network: its workspace, everything a pass writes that
// is not a parameter. Sized for the largest batch seen and reused, so that a
// training step allocates nothing. Python twin: the per-layer caches of
// fastmlp.reference.Network (z, y, d, ...).
#pragma once

#include <cstdint>
#include <vector>

#include "common/aligned.h"
#include "common/types.h"
#include "network/layer.h"

namespace fastmlp {

// Layer l's buffers, rows x out_l each (rows = the capacity); nullptr where
// the layer does not need one.
template <class T>
struct LayerBuffers {
  T* z = nullptr;        // pre-activation (after batch norm)
  T* y = nullptr;        // act(z); the same buffer as z for the identity
  T* d = nullptr;        // dL/d(out); backward overwrites it in place with dL/dy, dL/dz, dL/dlin
  T* lin = nullptr;      // batch norm: x W^T + b, before normalizing
  T* xhat = nullptr;     // batch norm: the normalized lin
  T* mask = nullptr;     // dropout: 0 or 1/(1-p) per element
  T* dropped = nullptr;  // dropout: y * mask
  const T* out = nullptr;  // what the next layer reads: dropped or y (set by each forward)
};

// A batch-normalized layer's batch statistics (out_l each), from the training
// forward to backward (invstd) and to the running-statistics update (mean, var).
template <class T>
struct BnCache {
  T* mean = nullptr;
  T* var = nullptr;  // biased
  T* invstd = nullptr;
};

template <class T>
class Workspace {
 public:
  Workspace(const std::vector<LayerSpec>& layers, Loss loss);

  // Grows every buffer to at least `rows` rows (contents are not kept).
  // Checks the sizes first: std::overflow_error when they do not fit a
  // count, OutOfMemory (naming the batch and the bytes) beyond the memory
  // limit or when an allocation fails, which leaves the workspace empty.
  void reserve(index_t rows);
  // Frees every buffer (capacity 0).
  void release();
  index_t capacity() const { return capacity_; }

  LayerBuffers<T>& layer(index_t l) { return layers_[l]; }
  const LayerBuffers<T>& layer(index_t l) const { return layers_[l]; }
  BnCache<T> bn_cache(index_t l);

  // The loss's per-row scratch and the per-row softmax tail r = sum exp(z -
  // max) - 1 of the last forward (cross_entropy; nn/losses.h loss_output).
  double* row_loss() { return row_loss_.data(); }
  T* softmax_tail() { return softmax_tail_.data(); }

  // A gathered (shuffled) batch: rows x in, its targets, weights and class ids.
  T* batch_x() { return batch_x_.data(); }
  T* batch_target() { return batch_target_.data(); }
  T* batch_weight() { return batch_weight_.data(); }
  int32_t* batch_labels() { return batch_labels_.data(); }

  // What the last forward was: its rows and mode (backward reads both).
  index_t last_rows = 0;
  bool last_training = false;

 private:
  std::vector<LayerSpec> specs_;
  Loss loss_;
  index_t capacity_ = 0;
  std::vector<LayerBuffers<T>> layers_;
  AlignedBuffer<T> arena_;  // every LayerBuffers array, one allocation
  AlignedBuffer<T> bn_;     // per batch-norm layer: mean, var, invstd
  std::vector<index_t> bn_offset_;
  AlignedBuffer<T> batch_x_, batch_target_, batch_weight_, softmax_tail_;
  AlignedBuffer<int32_t> batch_labels_;
  AlignedBuffer<double> row_loss_;
};

}  // namespace fastmlp
