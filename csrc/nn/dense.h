// One dense (fully connected) layer, forward and backward.
// Python twin: fastmlp.reference.dense_forward / dense_backward.
//
// Row-major. x (n, in), w (out, in) as torch.nn.Linear, b (out); z, y (n, out).
//   forward:  z = x w^T + b,  y = act(z)        one GEMM, bias and act in its epilogue
//   backward: dz = dy * act'(z)                 one pass, which also sums db
//             dw = dz^T x,  db = sum_rows(dz),  dx = dz w
// Every output is written, never accumulated.
// prec == GemmPrecision::bf16 (float only) runs the three GEMMs on operands
// rounded to bf16 with float32 sums (gemm_bf16), the epilogue and dz/db in
// float32 as always; double refuses it (std::invalid_argument). With bf16, a
// panel of w (gemm.h Bf16Panel: w^T's for the forward, w's for dx) replaces
// the packing of w in that product, with the same result bit for bit.
#pragma once

#include <cstdint>

#include "common/types.h"

namespace fastmlp {

struct Bf16Panel;

// y may equal z (act == identity, or to keep only y). b may be nullptr (no bias).
template <class T>
// y_panel (mixed_bfloat16, float only): y is also written there in bf16 as
// the B panel (k = n rows, n = out columns) that the next layer's weight
// gradient reads, stride bf16_panel_nr() * ((n + 1) / 2) words per sliver.
void dense_forward(T* z, T* y, const T* x, const T* w, const T* b, index_t n, index_t in,
                   index_t out, Act act, GemmPrecision prec = GemmPrecision::native,
                   const Bf16Panel* wt_panel = nullptr, std::uint32_t* y_panel = nullptr);

// dy (n, out) -> dz (n, out), dw (out, in), db (out), dx (n, in).
// dz may equal dy (computed in place); dx may be nullptr (first layer: no
// gradient with respect to the data is needed); db may be nullptr.
template <class T>
// x_panel: x in bf16 as dense_forward's y_panel wrote it (the weight
// gradient's B operand, read in place), or nullptr.
void dense_backward(T* dx, T* dw, T* db, T* dz, const T* dy, const T* x, const T* w, const T* z,
                    const T* y, index_t n, index_t in, index_t out, Act act,
                    GemmPrecision prec = GemmPrecision::native,
                    const Bf16Panel* w_panel = nullptr, const Bf16Panel* x_panel = nullptr);

// dx (n, in) = dz (n, out) w (out, in) alone: dense_backward's third product,
// for a caller that takes dw and db over parts of the rows (data-parallel
// pieces) and dx over all of them at once.
template <class T>
void dense_backward_dx(T* dx, const T* dz, const T* w, index_t n, index_t in, index_t out,
                       GemmPrecision prec = GemmPrecision::native,
                       const Bf16Panel* w_panel = nullptr);
// dz = dy * act'(z) and db = sum over rows of dz, in one sweep. The row sum
// runs in increasing row order for every column, whatever the thread count.
template <class T>
void dense_dz_db(T* dz, T* db, const T* dy, const T* z, const T* y, index_t n, index_t out,
                 Act act);

}  // namespace fastmlp
