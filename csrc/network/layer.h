// What every room of a network shares: the layer specification and the
// 64-byte rounding of block sizes. Python twin: fastmlp.reference.Network's
// constructor arguments; bound as _core.LayerSpec.
#pragma once

#include <vector>

#include "common/aligned.h"
#include "common/types.h"

namespace fastmlp {

// Layer l:  lin = x W^T + b                       (W: out x in, as torch.nn.Linear)
//           z = BN(lin) with batch_norm, else lin
//           y = act(z)
//           out = y * mask with dropout (training), else y;  out is layer l+1's x
struct LayerSpec {
  index_t in = 0, out = 0;
  Act act = Act::identity;
  double dropout = 0.0;     // rate p of inverted dropout on the layer's output (hidden layers)
  bool batch_norm = false;  // batch normalization between the linear map and act (hidden layers)
};

// Throws std::invalid_argument naming the layer and the problem: sizes that
// do not chain, unknown ids, dropout or batch norm on the output layer, an
// output activation with a loss that applies its own.
void check_layers(const std::vector<LayerSpec>& layers, Loss loss);

// n elements of T rounded up to whole 64-byte lines, so that the next block
// starts aligned.
template <class T>
constexpr index_t aligned_count(index_t n) {
  constexpr index_t per_line = index_t(kAlign / sizeof(T));
  return (n + per_line - 1) / per_line * per_line;
}

}  // namespace fastmlp
