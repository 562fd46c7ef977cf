// Inverted dropout with a counter-based mask: element e of layer `layer`'s
// output at optimizer step `step` is kept when its uniform draw u >= p, and
// then scaled by 1 / (1 - p). The draw is a pure function of
// (seed, step, layer, e), so masks are the same for any thread count, and the
// backward pass multiplies by the same stored mask.
// Python twin: fastmlp.reference.dropout_mask.
//
// The draw: Philox4x32-10 (nn/rng.h) with key = seed and counter
//   (c0, c1, c2, c3) = (uint32(e / 4), uint32(step), 3 (RngStream::dropout) | layer << 8,
//                       uint32(step >> 32))
// gives four 32-bit words; element e takes word e % 4, w, and u = w * 2^-32.
#pragma once

#include <cstdint>

#include "common/types.h"

namespace fastmlp {

// mask[0, count): 0 or 1 / (1 - p), for elements first..first+count-1 of the
// layer's (n, units) output in row-major order (first > 0: a data-parallel
// rank whose rows start at row first / units of the global batch draws that
// batch's masks for them). 0 <= p < 1; p == 0 writes all ones.
template <class T>
void dropout_mask(T* mask, index_t count, double p, uint64_t seed, uint64_t step, uint32_t layer,
                  index_t first = 0);

// y[i] = x[i] * mask[i]   (y may alias x)
template <class T>
void apply_mask(T* y, const T* x, const T* mask, index_t count);

}  // namespace fastmlp
