// Cache-blocked GEMM driver: the five loops around the micro-kernel.
//
//   for jc over n in steps of NC        B panel (kc x nc), packed or read in place (L3)
//     for pc over k in steps of KC      the only loop that accumulates into C
//       for ic over m in steps of MC    A block (mc x kc), packed or read in place (L2)
//         for jr, for ir micro-tiles    B sliver kc x NR in L1 (or ir outer: plan_rect)
//           micro-kernel MR x NR
//
// plan_gemm() and plan_rect() (below) decide the route: kernel, swap, thread
// grid, which operands are packed, tile order; gemm_rect() only follows it.
// Threads own disjoint rectangles of C (a grid chosen per shape) and run these
// loops on their own rectangle with their own pack buffers, so there is no
// barrier inside a product. Threads never split pc or the k loop inside a
// micro-kernel, which keeps results independent of the thread count. Pack
// buffers are per thread (thread_local), so two Python threads that call into
// the core with the GIL released never share one, and a step after the first
// allocates nothing.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <cstdint>

#include "common/aligned.h"
#include "common/bf16.h"
#include "common/parallel.h"
#include "common/restrict.h"
#include "gemm/gemm.h"
#include "gemm/ukr.h"
#include "nn/activations.h"

// Packing copies are short runs (a register tile's width); GCC would turn
// each into a memmove call, which costs more than the copy itself.
#if defined(__GNUC__) && !defined(__clang__)
#define FM_NO_MEMMOVE __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define FM_NO_MEMMOVE
#endif

namespace fastmlp {
namespace {

// One MR-row sliver of op(A) (rows i0.., k columns p0..p0+kc) into dst[p*MR + i].
template <class T>
FM_NO_MEMMOVE void pack_a_sliver(T* FM_RESTRICT dst, Trans ta, const T* a, index_t lda, index_t i0, index_t mr,
                   index_t p0, index_t kc, int MR) {
  if (ta == Trans::N) {  // op(A)(i, p) = a[i*lda + p]: read rows, scatter by MR
    for (index_t i = 0; i < mr; ++i) {
      const T* src = a + (i0 + i) * lda + p0;
      for (index_t p = 0; p < kc; ++p) dst[p * MR + i] = src[p];
    }
  } else {  // op(A)(i, p) = a[p*lda + i]: contiguous in i
    for (index_t p = 0; p < kc; ++p) {
      const T* src = a + (p0 + p) * lda + i0;
      for (index_t i = 0; i < mr; ++i) dst[p * MR + i] = src[i];
    }
  }
  if (mr < MR)
    for (index_t p = 0; p < kc; ++p)
      for (index_t i = mr; i < MR; ++i) dst[p * MR + i] = T(0);
}

// The kc x nc panel of op(B) = B (row-major, rows along j) into NR-wide
// slivers, dst[jr*NR*kc + p*NR + j], zero-padded to whole slivers, row by
// row: each source row is read once from start to end (one page at a time)
// and scattered to the slivers, where sliver by sliver the reads would stride
// through kc pages per sliver.
template <class T>
FM_NO_MEMMOVE void pack_b_panel_rows(T* FM_RESTRICT dst, const T* b, index_t ldb, index_t p0,
                                     index_t kc, index_t j0, index_t nc, int NR) {
  for (index_t p = 0; p < kc; ++p) {
    const T* src = b + (p0 + p) * ldb + j0;
    T* d = dst + p * NR;
    for (index_t jr = 0; jr * NR < nc; ++jr) {
      const index_t w = std::min<index_t>(NR, nc - jr * NR);
      T* o = d + jr * NR * kc;
      for (index_t j = 0; j < w; ++j) o[j] = src[jr * NR + j];
      for (index_t j = w; j < NR; ++j) o[j] = T(0);
    }
  }
}

// One NR-column sliver of op(B) (k rows p0..p0+kc, columns j0..) into dst[p*NR + j].
template <class T>
FM_NO_MEMMOVE void pack_b_sliver(T* FM_RESTRICT dst, Trans tb, const T* b, index_t ldb, index_t p0, index_t kc,
                   index_t j0, index_t nr, int NR) {
  if (tb == Trans::N) {  // op(B)(p, j) = b[p*ldb + j]: a panel of one sliver
    pack_b_panel_rows(dst, b, ldb, p0, kc, j0, nr, NR);
    return;
  }
  // op(B)(p, j) = b[j*ldb + p]
  for (index_t j = 0; j < nr; ++j) {
    const T* src = b + (j0 + j) * ldb + p0;
    for (index_t p = 0; p < kc; ++p) dst[p * NR + j] = src[p];
  }
  if (nr < NR)
    for (index_t p = 0; p < kc; ++p)
      for (index_t j = nr; j < NR; ++j) dst[p * NR + j] = T(0);
}

inline std::uint32_t bf16_pair(float lo, float hi) {
  return std::uint32_t(bf16_bits(lo)) | (std::uint32_t(bf16_bits(hi)) << 16);
}

// PackBf16Fn (ukr.h) in scalar code: rows r0..r0+rows as slivers of R rows
// (ss words apart) of bf16 pairs along k, the last pair of an odd kc padded with +0 and the
// last sliver's rows beyond `rows` zero. Zero padding keeps the padded lanes
// finite even against inf or NaN in the other operand's real k (0 * 0), and
// the padded rows are never written to C.
FM_NO_MEMMOVE void pack_bf16_pairs(std::uint32_t* FM_RESTRICT dst, bool k_contig, const float* x,
                                   index_t ldx, index_t r0, index_t rows, index_t p0, index_t kc,
                                   int R, index_t ss) {
  const index_t kfull = kc / 2, kp = (kc + 1) / 2;
  const index_t padded = (rows + R - 1) / R * R;
  // Row r of the block, pair q: its sliver, then q, then r within it.
  auto at = [&](index_t r, index_t q) -> std::uint32_t& {
    return dst[(r / R) * ss + q * R + r % R];
  };
  if (k_contig) {
    for (index_t r = 0; r < rows; ++r) {
      const float* src = x + (r0 + r) * ldx + p0;
      for (index_t q = 0; q < kfull; ++q) at(r, q) = bf16_pair(src[2 * q], src[2 * q + 1]);
      if (kc % 2) at(r, kfull) = bf16_pair(src[kc - 1], 0.0f);
    }
  } else {
    for (index_t q = 0; q < kp; ++q) {
      const float* s0 = x + (p0 + 2 * q) * ldx + r0;
      const float* s1 = s0 + ldx;
      for (index_t r = 0; r < rows; ++r) at(r, q) = bf16_pair(s0[r], 2 * q + 1 < kc ? s1[r] : 0.0f);
    }
  }
  for (index_t r = rows; r < padded; ++r)
    for (index_t q = 0; q < kp; ++q) at(r, q) = 0;
}

// Rows [i0, i0 + rows) x columns [j0, j0 + cols) of y into the epilogue's bf16
// panel (Epilogue::y_panel): pair q = i / 2 of column j at word
// (j / nr) * stride + q * nr + j % nr. Blocks start on even rows; an odd
// count ends y, and its last pair's high half is zero, as packing pads it.
// Whole slivers go through the bf16 unit's packing; the columns of a sliver
// that the block shares with another block (a narrow plan's 16-column tiles
// of a 32-column sliver, y's last columns) word by word, so that no block
// writes another's lanes (packing would zero them as padding).
void write_y_panel(const Epilogue<float>& ep, index_t i0, index_t rows, index_t j0, index_t cols) {
  if (i0 % 2) throw std::logic_error("epilogue: a bf16 panel block must start on an even row");
  const int NR = ep.y_panel_nr;
  const index_t ss = ep.y_panel_stride;
  std::uint32_t* dst = ep.y_panel + (i0 / 2) * NR;
  const index_t first = std::min(j0 + cols, (j0 + NR - 1) / NR * NR);  // the first whole sliver
  const index_t whole = (j0 + cols - first) / NR * NR;
  if (whole > 0) {
    const Bf16Kernel& B = active_bf16_kernel();
    (B.pack ? B.pack : &pack_bf16_pairs)(dst + (first / NR) * ss, false, ep.y, ep.ldy, first,
                                         whole, i0, rows, NR, ss);
  }
  auto words = [&](index_t ja, index_t jb) {
    for (index_t q = 0; 2 * q < rows; ++q) {
      const float* y0 = ep.y + (i0 + 2 * q) * ep.ldy;
      const float* y1 = 2 * q + 1 < rows ? y0 + ep.ldy : nullptr;
      for (index_t j = ja; j < jb; ++j)
        dst[(j / NR) * ss + q * NR + j % NR] = bf16_pair(y0[j], y1 ? y1[j] : 0.0f);
    }
  };
  words(j0, first);
  words(first + whole, j0 + cols);
}

template <class T>
void apply_epilogue(const GemmKernel<T>& K, const Epilogue<T>& ep, T* c, index_t ldc, index_t i0,
                    index_t rows, index_t j0, index_t cols) {
  for (index_t i = i0; i < i0 + rows; ++i) {
    T* ci = c + i * ldc + j0;
    if (ep.bias) {
      const T* bj = ep.bias + j0;
      for (index_t j = 0; j < cols; ++j) ci[j] += bj[j];
    }
    if (ep.y) act_forward_fast(K, ep.y + i * ep.ldy + j0, ci, cols, ep.act);
  }
  if constexpr (std::is_same_v<T, float>)
    if (ep.y_panel && ep.y) write_y_panel(ep, i0, rows, j0, cols);
}

// Whether an epilogue has work to do (bias or activation); one that only
// carries the stream hint is passed on as none.
template <class T>
const Epilogue<T>* working(const Epilogue<T>* ep) {
  return ep && (ep->bias || ep->y) ? ep : nullptr;
}

// Whether a thread's m x n share of C is stored around the caches: asked for
// (Epilogue::stream), with no epilogue work, beta == 0 and k in one k block.
template <class T>
bool streams(const Epilogue<T>* ep, T beta, index_t k, index_t kc, index_t m, index_t n) {
  return ep && ep->stream && !working(ep) && beta == T(0) && k <= kc &&
         m * n * index_t(sizeof(T)) >= kStreamBytes;
}

template <class T>
void scale_c(T beta, T* c, index_t ldc, index_t m, index_t n) {
  for (index_t i = 0; i < m; ++i) {
    T* ci = c + i * ldc;
    if (beta == T(0))
      for (index_t j = 0; j < n; ++j) ci[j] = T(0);
    else
      for (index_t j = 0; j < n; ++j) ci[j] *= beta;
  }
}

template <class T>
struct PackBuffers {
  AlignedBuffer<T> a, b;
  AlignedBuffer<T> tiles;  // gemm_pieces: one micro-tile per piece
};

template <class T>
PackBuffers<T>& pack_buffers() {
  thread_local PackBuffers<T> bufs;
  return bufs;
}

// The swapped route's write-back: tile(r, s) = C(j0 + s, i0 + r), rows of the
// tile (row stride NR) are columns of C. beta == 0 never reads C.
template <class T>
void write_tile_transposed(const T* tile, int NR, T* c, index_t ldc, index_t i0, index_t j0,
                           index_t mr, index_t nr, T beta) {
  for (index_t s = 0; s < nr; ++s) {
    T* cs = c + (j0 + s) * ldc + i0;
    if (beta == T(0))
      for (index_t r = 0; r < mr; ++r) cs[r] = tile[r * NR + s];
    else if (beta == T(1))
      for (index_t r = 0; r < mr; ++r) cs[r] += tile[r * NR + s];
    else
      for (index_t r = 0; r < mr; ++r) cs[r] = tile[r * NR + s] + beta * cs[r];
  }
}

// The blocked product of one rectangle of C, rows [r.i0, r.i1) and columns
// [r.j0, r.j1), on the calling thread with its own pack buffers, along the
// route R (plan_rect). U is the plan's kernel; K supplies the narrow kernel
// for edge tiles, the packing functions and the epilogue's activation loop.
//
// With R.transposed_c the caller has swapped the operands (computing
// C^T = op(B)^T op(A)^T, see plan_gemm): each micro-tile is then formed in a
// small buffer and written to C transposed, with the epilogue applied to it
// in C's own coordinates.
template <class T>
void gemm_rect(const GemmKernel<T>& K, const Ukr<T>& U, const RectPlan& R, Trans ta, Trans tb,
               const GemmRect& r, index_t k, T alpha, const T* a, index_t lda, const T* b,
               index_t ldb, T beta, T* c, index_t ldc, const Epilogue<T>* ep,
               const PieceSums<T>* ps = nullptr) {
  const int MR = R.mr, NR = R.nr;
  const index_t MC = R.mc, KC = R.kc, NC = R.nc;
  const index_t i_beg = r.i0, i_end = r.i1, j_beg = r.j0, j_end = r.j1;
  const index_t m = i_end - i_beg, n = j_end - j_beg;
  // The plan's fields as locals: the micro-kernel calls are opaque, and a
  // field read through R would be reloaded after each of them.
  const bool a_packed = R.a == ARoute::packed, b_packed = R.b == BRoute::packed;
  const bool a_rows = R.a == ARoute::rows, transposed_c = R.transposed_c;
  const index_t narrow_edge_nr = R.narrow_edge_nr;
  const TileOrder order = R.order, order_last = R.order_last;
  PackBuffers<T>& bufs = pack_buffers<T>();
  bufs.a.reserve((a_packed ? std::min(MC, (m + MR - 1) / MR * MR) : MR) * std::min(KC, k));
  bufs.b.reserve((b_packed ? std::min(NC, (n + NR - 1) / NR * NR) : NR) * std::min(KC, k));
  T* const apack = bufs.a.data();
  T* const bpack = bufs.b.data();
  alignas(64) T tile[kMaxTile];
  // gemm_pieces: one micro-tile per piece (the caller made kc = k, so each
  // piece lies in the one k block).
  T* tiles = nullptr;
  if (ps) {
    bufs.tiles.reserve(ps->pieces * kMaxTile);
    tiles = bufs.tiles.data();
  }

  for (index_t jc = j_beg; jc < j_end; jc += NC) {
    const index_t nc = std::min(NC, j_end - jc);
    const index_t n_jr = (nc + NR - 1) / NR;
    for (index_t pc = 0; pc < k; pc += KC) {
      const index_t kc = std::min(KC, k - pc);
      const T beta_blk = pc == 0 ? beta : T(1);
      const bool last_k = pc + kc == k;
      // A packed panel of op(B) = B is packed row by row, one of op(B) = B^T
      // sliver by sliver (the ISA's transposing pack when it has one).
      if (b_packed && tb == Trans::N)
        pack_b_panel_rows(bpack, b, ldb, pc, kc, jc, nc, NR);
      else if (b_packed)
        for (index_t jr = 0; jr < n_jr; ++jr) {
          const index_t j0 = jr * NR, nr = std::min<index_t>(NR, nc - j0);
          if (K.pack_bt)
            K.pack_bt(bpack + jr * NR * kc, b, ldb, pc, kc, jc + j0, nr, NR);
          else
            pack_b_sliver(bpack + jr * NR * kc, tb, b, ldb, pc, kc, jc + j0, nr, NR);
        }
      for (index_t ic = i_beg; ic < i_end; ic += MC) {
        const index_t mc = std::min(MC, i_end - ic);
        const index_t n_ir = (mc + MR - 1) / MR;
        // Row-major A packs exactly as B^T does (dst[p*MR + i] = a[i*lda + p]):
        // the ISA's transposing pack when it has one.
        auto pack_a = [&](T* dst, index_t i0, index_t rows) {
          if (ta == Trans::N && K.pack_bt)
            K.pack_bt(dst, a, lda, pc, kc, i0, rows, MR);
          else
            pack_a_sliver(dst, ta, a, lda, i0, rows, pc, kc, MR);
        };
        if (a_packed && ta == Trans::T) {
          // op(A) = A^T: rows of `a` run along i, so the block is packed as
          // a B panel is, row by row (page by page), into MR-wide slivers.
          pack_b_panel_rows(apack, a, lda, pc, kc, ic, mc, MR);
        } else if (a_packed) {
          for (index_t ir = 0; ir < n_ir; ++ir) {
            const index_t i0 = ir * MR;
            pack_a(apack + ir * MR * kc, ic + i0, std::min<index_t>(MR, mc - i0));
          }
        } else if (mc % MR) {  // read in place, but the edge sliver is packed, once
          pack_a(apack, ic + (n_ir - 1) * MR, mc % MR);
        }
        // Column sliver jr of B as the kernel reads it: in place, or packed
        // (the whole panel above, or here an edge sliver of an in-place B).
        struct Sliver {
          const T* bp;
          index_t bstride, j0, nr;
          const Ukr<T>* ukr;
        };
        index_t edge_jr = -1;  // the edge sliver bpack holds now
        auto sliver = [&](index_t jr) {
          Sliver sl;
          sl.j0 = jc + jr * NR;
          sl.nr = std::min<index_t>(NR, j_end - sl.j0);
          if (b_packed) {
            sl.bp = bpack + jr * NR * kc;
            sl.bstride = NR;
          } else if (sl.nr == NR) {
            sl.bp = b + pc * ldb + sl.j0;
            sl.bstride = ldb;
          } else {
            if (edge_jr != jr) pack_b_sliver(bpack, tb, b, ldb, pc, kc, sl.j0, sl.nr, NR);
            edge_jr = jr;
            sl.bp = bpack;
            sl.bstride = NR;
          }
          sl.ukr = sl.nr <= narrow_edge_nr ? &K.narrow : &U;
          return sl;
        };
        // Full-height tile ir's A: at a_full + ir * a_step, a_stride apart,
        // row-major (a_rows: the kernel's rowmajor variant) or k-major; an edge
        // sliver is always packed (apack, k-major, MR apart).
        const index_t a_stride = a_packed ? MR : lda;
        const index_t a_step = a_packed ? index_t(MR) * kc : a_rows ? MR * lda : MR;
        const T* const a_full = a_packed ? apack : a_rows ? a + ic * lda + pc : a + pc * lda + ic;
        auto run_tile = [&](const Sliver& sl, index_t ir) {
          const Ukr<T>& UJ = *sl.ukr;
          const T* bp = sl.bp;
          const index_t bstride = sl.bstride, j0 = sl.j0, nr = sl.nr;
          const index_t i0 = ic + ir * MR;
          const index_t mr = std::min<index_t>(MR, i_end - i0);
          UkrFn<T> f = a_rows ? UJ.rowmajor : UJ.kmajor;
          const T* ap = a_full + ir * a_step;
          index_t astride = a_stride;
          if (mr < MR) {  // the edge sliver, packed
            f = edge_rows_kernel(K, &UJ == &K.narrow, mr, MR, UJ.kmajor);
            ap = a_packed ? apack + ir * MR * kc : apack;
            astride = MR;
          }
          if (ps) {
            // Each piece's product from zero over its own k range, then the
            // groups' trees, then each group's tile to its C.
            const index_t k_step = a_packed || mr < MR ? MR : a_rows ? 1 : lda;
            // Piece q's product into dst (row stride ldd): its chain in
            // gemm()'s k blocks; add: the first block added to dst too.
            auto product = [&](index_t q, T* dst, index_t ldd, bool add) {
              for (index_t k0 = ps->kb[q]; k0 < ps->kb[q + 1]; k0 += ps->kc)
                f(std::min(ps->kc, ps->kb[q + 1] - k0), ap + k0 * k_step, astride,
                  bp + k0 * bstride, bstride, dst, ldd, mr, nr, alpha,
                  add || k0 > ps->kb[q] ? T(1) : T(0));
            };
            // Tree node [a, b) (global pieces) into dst: its left half there,
            // then the right half added, x + y; a right half of one piece
            // within one k block is added by the kernel itself (its beta = 1
            // store is acc + dst, the same sum), any other through the tile
            // of its first piece.
            auto node = [&](auto&& self, index_t a, index_t b, T* dst, index_t ldd) -> void {
              if (b - a == 1) {
                product(a - ps->first, dst, ldd, false);
                return;
              }
              const index_t mid = (a + b) / 2;
              self(self, a, mid, dst, ldd);
              const index_t qm = mid - ps->first;
              if (b - mid == 1 && ps->kb[qm + 1] - ps->kb[qm] <= ps->kc) {
                product(qm, dst, ldd, true);
                return;
              }
              T* FM_RESTRICT y = tiles + qm * kMaxTile;
              self(self, mid, b, y, NR);
              for (index_t i = 0; i < mr; ++i)
#pragma omp simd
                for (index_t j = 0; j < nr; ++j) dst[i * ldd + j] = dst[i * ldd + j] + y[i * NR + j];
            };
            for (index_t g = 0; g < ps->n_groups; ++g) {
              const index_t q0 = ps->groups[g], q1 = ps->groups[g + 1];
              if (!transposed_c) {
                node(node, ps->first + q0, ps->first + q1, ps->c[g] + i0 * ldc + j0, ldc);
              } else {  // formed in a tile, written transposed
                T* t0 = tiles + q0 * kMaxTile;
                node(node, ps->first + q0, ps->first + q1, t0, NR);
                write_tile_transposed(t0, NR, ps->c[g], ldc, i0, j0, mr, nr, T(0));
              }
            }
            return;
          }
          if (!transposed_c) {
            f(kc, ap, astride, bp, bstride, c + i0 * ldc + j0, ldc, mr, nr, alpha, beta_blk);
            return;
          }
          f(kc, ap, astride, bp, bstride, tile, NR, mr, nr, alpha, T(0));
          write_tile_transposed(tile, NR, c, ldc, i0, j0, mr, nr, beta_blk);
          if (last_k && ep) apply_epilogue(K, *ep, c, ldc, j0, nr, i0, mr);
        };
        if ((last_k ? order_last : order) == TileOrder::ir_fastest) {
          // Full-height tiles of a plain product (no pieces, C written in
          // place) straight to the kernel: with a short k block (an output
          // layer's dX, k = 10) the per-tile dispatch of run_tile is a tenth
          // of the call. Same kernel, same arguments, same sums.
          const index_t full_ir = ps || transposed_c ? 0 : (mc / MR);
          for (index_t jr = 0; jr < n_jr; ++jr) {
            const Sliver sl = sliver(jr);
            const UkrFn<T> f = a_rows ? sl.ukr->rowmajor : sl.ukr->kmajor;
            for (index_t ir = 0; ir < full_ir; ++ir)
              f(kc, a_full + ir * a_step, a_stride, sl.bp, sl.bstride,
                c + (ic + ir * MR) * ldc + sl.j0, ldc, MR, sl.nr, alpha, beta_blk);
            for (index_t ir = full_ir; ir < n_ir; ++ir) run_tile(sl, ir);
          }
        } else {
          for (index_t ir = 0; ir < n_ir; ++ir)
            for (index_t jr = 0; jr < n_jr; ++jr) run_tile(sliver(jr), ir);
        }
        // The epilogue of this mc x nc block, one call per row over all its
        // columns while the block is still in L2 (per micro-tile it would be
        // one call per 32 elements, and the calls cost more than the work).
        if (last_k && ep && !transposed_c) apply_epilogue(K, *ep, c, ldc, ic, mc, jc, nc);
      }
    }
  }
}

// How nt threads split an m x n result: a grid of tm x tn rectangles whose
// columns fall on register-tile boundaries and rows on multiples of the row
// step. Each thread packs the A rows and B columns of its own rectangle (A is
// packed tn times over, B tm times), so the cost of a split is its largest
// rectangle's multiply-adds (padded to whole steps and tiles) plus its
// packing.
struct Split {
  int tm = 1, tn = 1;
};

// b_panel: B is a prepacked panel read in place (gemm_bf16_panel), so only A
// costs packing: splitting rows then packs each A row once, where splitting
// columns would pack all of A in every thread.
// Rows go in steps of RS (GemmPlan::row_step), not whole tiles: the last
// sliver of a thread's rows then runs a shorter kernel that fits it exactly,
// and two threads share 256 rows 128 / 128 instead of 132 / 124 (11 tiles
// against 10 and a third).
inline Split choose_split(index_t m, index_t n, index_t k, int RS, int NR, int nt,
                          bool b_panel) {
  const index_t mt = (m + RS - 1) / RS, ntl = (n + NR - 1) / NR;
  Split best;
  double best_cost = -1.0;
  for (int tm = 1; tm <= nt; ++tm) {
    if (nt % tm) continue;
    const int tn = nt / tm;
    if (tm > mt || tn > ntl) continue;
    const double rows = double((mt + tm - 1) / tm * RS), cols = double((ntl + tn - 1) / tn * NR);
    const double cost = rows * cols * double(k) + 4.0 * (rows + (b_panel ? 0.0 : cols)) * double(k);
    if (best_cost < 0.0 || cost < best_cost) {
      best_cost = cost;
      best.tm = tm;
      best.tn = tn;
    }
  }
  return best;
}

// Fraction of the register tiles' lanes that hold real elements of an m x n
// result: 1 when both divide evenly.
inline double tile_fill(index_t m, index_t n, int mr, int nr) {
  const double fm = double(m) / double((m + mr - 1) / mr * mr);
  const double fn = double(n) / double((n + nr - 1) / nr * nr);
  return fm * fn;
}

// Runs plan P (operands already swapped when P.swapped). Threads work on
// disjoint rectangles of C with no barrier between them (only the final
// join), so a thread that the OS preempts delays only its own share; each
// element of C is still summed by one thread in k order.
// run(rect, route) for each thread's rectangle of plan P (the float and the
// bf16 GEMM both run through here).
template <class RunRect>
void run_plan(const GemmBlocking& B, const GemmPlan& P, const RunRect& run_rect) {
  auto run = [&](const GemmRect& r) {
    GemmShape rs = P.shape;
    rs.m = r.i1 - r.i0;
    rs.n = r.j1 - r.j0;
    run_rect(r, plan_rect(rs, B, P.narrow, P.swapped));
  };
  if (P.threads <= 1) {
    run(plan_thread_rect(P, 0));
    return;
  }
#if defined(_OPENMP)
#pragma omp parallel num_threads(P.threads)
#endif
  {
    note_team(team_size());
    const GemmRect r = plan_thread_rect(P, thread_id());
    if (r.i0 < r.i1 && r.j0 < r.j1) run(r);
  }
}

template <class T>
void gemm_run(const GemmKernel<T>& K, const GemmBlocking& B, const GemmPlan& P, T alpha,
              const T* a, const T* b, T beta, T* c, const Epilogue<T>* ep) {
  const GemmShape& s = P.shape;
  const Ukr<T>& U = P.narrow ? K.narrow : K.wide;
  run_plan(B, P, [&](const GemmRect& r, const RectPlan& R) {
    const bool stream = K.wide_stream.kmajor && !P.narrow && !P.swapped &&
                        streams(ep, beta, s.k, R.kc, r.i1 - r.i0, r.j1 - r.j0);
    gemm_rect(K, stream ? K.wide_stream : U, R, s.ta, s.tb, r, s.k, alpha, a, s.lda, b, s.ldb,
              beta, c, s.ldc, working(ep));
  });
}

// ---------------------------------------------------------------------------
// bf16: the packed-only loops around the kernel (its scalar packing is above,
// next to the float packing, for the epilogue's bf16 panel of y).

// gemm_rect for bf16: the same loops and tile orders, every operand packed
// (the rounding happens there), k blocks of an even KC so that a pair never
// straddles two blocks.
//
// With a panel, B is read from it in place (no B packing at all).
void gemm_rect_bf16(const Bf16Kernel& K, const RectPlan& R, bool narrow, Trans ta, Trans tb,
                    const GemmRect& r, index_t k, float alpha, const float* a, index_t lda,
                    const float* b, index_t ldb, float beta, float* c, index_t ldc,
                    const Epilogue<float>* ep, const Bf16Panel* panel = nullptr) {
  // The epilogue is the float GEMM's (apply_epilogue): its activation loop
  // is the float path's vector code, the same whether or not bf16 is on.
  const GemmKernel<float>& FK = active_gemm_kernel<float>();
  const int MR = R.mr, NR = R.nr;
  const index_t MC = R.mc, KC = R.kc;
  const index_t i_end = r.i1, j_end = r.j1;
  const index_t m = r.i1 - r.i0, n = r.j1 - r.j0;
  // Each jc block packs every A block again, so jc blocks are as wide as
  // the B panel allows: a panel read in place has no width limit, and a
  // packed one gets the KC x NC budget of its bytes whatever its k (an XL
  // layer's 4096 columns, from k = 512, in one block instead of two). The
  // sums are the same for any width.
  const index_t kc_max = std::min(KC, k);
  const index_t NC = panel ? std::max<index_t>(n, NR)
                           : std::max(R.nc, (KC * R.nc / std::max<index_t>(kc_max, 1)) / NR * NR);
  // A C written once and not read soon (Epilogue::stream: a weight gradient)
  // is stored around the caches: its lines are not read from memory first,
  // and they do not evict the operands.
  const bool stream = K.wide_stream && !narrow && !R.transposed_c && streams(ep, beta, k, KC, m, n);
  ep = working(ep);
  const UkrBf16Fn wide = narrow ? K.narrow : stream ? K.wide_stream : K.wide, thin = K.narrow;
  const index_t narrow_edge_nr = R.narrow_edge_nr;
  const bool transposed_c = R.transposed_c;
  const PackBf16Fn pack = K.pack ? K.pack : &pack_bf16_pairs;
  PackBuffers<std::uint32_t>& bufs = pack_buffers<std::uint32_t>();
  const index_t kp_max = (std::min(KC, k) + 1) / 2;
  bufs.a.reserve(std::min(MC, (m + MR - 1) / MR * MR) * kp_max);
  if (!panel) bufs.b.reserve(std::min(NC, (n + NR - 1) / NR * NR) * kp_max);
  std::uint32_t* const apack = bufs.a.data();
  std::uint32_t* const bpack = bufs.b.data();
  alignas(64) float tile[kMaxTile];

  for (index_t jc = r.j0; jc < j_end; jc += NC) {
    const index_t nc = std::min(NC, j_end - jc);
    const index_t n_jr = (nc + NR - 1) / NR;
    for (index_t pc = 0; pc < k; pc += KC) {
      const index_t kc = std::min(KC, k - pc), kp = (kc + 1) / 2;
      const float beta_blk = pc == 0 ? beta : 1.0f;
      const bool last_k = pc + kc == k;
      // B's slivers for this (jc, pc) block: sliver jr at bp + jr * bstride.
      const std::uint32_t* bp = bpack;
      index_t bstride = NR * kp;
      if (panel) {
        bstride = panel->stride();
        bp = panel->data + (jc / NR) * bstride + (pc / 2) * NR;
      } else {
        pack(bpack, tb == Trans::T, b, ldb, jc, nc, pc, kc, NR, bstride);
      }
      for (index_t ic = r.i0; ic < i_end; ic += MC) {
        const index_t mc = std::min(MC, i_end - ic);
        const index_t n_ir = (mc + MR - 1) / MR;
        pack(apack, ta == Trans::N, a, lda, ic, mc, pc, kc, MR, MR * kp);
        auto run_tile = [&](index_t jr, index_t ir) {
          const index_t j0 = jc + jr * NR, nr = std::min<index_t>(NR, j_end - j0);
          const index_t i0 = ic + ir * MR, mr = std::min<index_t>(MR, i_end - i0);
          const bool thin_tile = narrow || nr <= narrow_edge_nr;
          UkrBf16Fn f = nr <= narrow_edge_nr ? thin : wide;
          if (mr < MR) f = edge_rows_kernel(K, thin_tile, mr, MR, f);
          const std::uint32_t* ap = apack + ir * MR * kp;
          const std::uint32_t* bj = bp + jr * bstride;
          if (!transposed_c) {
            f(kp, ap, bj, NR, c + i0 * ldc + j0, ldc, mr, nr, alpha, beta_blk);
            return;
          }
          f(kp, ap, bj, NR, tile, NR, mr, nr, alpha, 0.0f);
          write_tile_transposed(tile, NR, c, ldc, i0, j0, mr, nr, beta_blk);
          if (last_k && ep) apply_epilogue(FK, *ep, c, ldc, j0, nr, i0, mr);
        };
        if ((last_k ? R.order_last : R.order) == TileOrder::ir_fastest) {
          for (index_t jr = 0; jr < n_jr; ++jr)
            for (index_t ir = 0; ir < n_ir; ++ir) run_tile(jr, ir);
        } else {
          for (index_t ir = 0; ir < n_ir; ++ir)
            for (index_t jr = 0; jr < n_jr; ++jr) run_tile(jr, ir);
        }
        // As in gemm_rect: the block's epilogue while it is still in L2.
        if (last_k && ep && !transposed_c) apply_epilogue(FK, *ep, c, ldc, ic, mc, jc, nc);
      }
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------
// Plans: every routing rule of the driver, each with the measurement that
// decided it.

GemmPlan plan_gemm(const GemmShape& s, const GemmBlocking& K, int threads, bool b_panel) {
  GemmPlan p;
  // A thin C (an output layer's 10 columns against a batch of 128 rows) fills
  // a wide register tile badly. Two remedies, chosen by how full the tiles
  // are: the one-vector-wide kernel, or C^T = op(B)^T op(A)^T, which puts the
  // long side along the vector lanes (its write-back is slower and op(A)^T
  // may need packing, so it must win clearly). The choice depends on the
  // shape only, never on the thread count.
  const bool narrow = tile_fill(s.m, s.n, K.narrow_mr, K.narrow_nr) >
                      1.25 * tile_fill(s.m, s.n, K.mr, K.nr);
  const int umr = narrow ? K.narrow_mr : K.mr, unr = narrow ? K.narrow_nr : K.nr;
  p.shape = s;
  if (tile_fill(s.n, s.m, K.mr, K.nr) > 1.5 * tile_fill(s.m, s.n, umr, unr)) {
    p.swapped = true;
    p.narrow = false;
    p.mr = K.mr;
    p.nr = K.nr;
    p.shape.ta = s.tb == Trans::N ? Trans::T : Trans::N;
    p.shape.tb = s.ta == Trans::N ? Trans::T : Trans::N;
    p.shape.m = s.n;
    p.shape.n = s.m;
    p.shape.lda = s.ldb;
    p.shape.ldb = s.lda;
  } else {
    p.narrow = narrow;
    p.mr = umr;
    p.nr = unr;
  }
  const index_t m = p.shape.m, n = p.shape.n, k = p.shape.k;
  p.row_step = row_step_of(K, p.mr);
  int nt = threads_for_count(double(m) * double(n) * double(k), threads);
  Split sp;  // one thread: the whole of C (most small products end here)
  if (nt > 1) {
    const bool panel = b_panel && !p.swapped && !p.narrow;
    sp = choose_split(m, n, k, p.row_step, p.nr, nt, panel);
    // Fewer tiles than threads: use as many threads as the split can feed.
    while (nt > 1 && sp.tm * sp.tn != nt)
      sp = choose_split(m, n, k, p.row_step, p.nr, --nt, panel);
    if (nt <= 1) nt = 1, sp = Split();
  }
  p.threads = nt;
  p.tm = sp.tm;
  p.tn = sp.tn;
  return p;
}

int row_step_of(const GemmBlocking& K, int mr) {
  // Even steps only: a mixed_bfloat16 forward's epilogue writes its rows into
  // a bf16 panel in pairs, so every block must start on an even row
  // (write_y_panel); every kernel's mr is even.
  for (int s : K.short_mr) {
    if (s <= 0 || mr % s || s % 2) continue;
    bool all = true;
    for (int r = s; r < mr && all; r += s)
      all = std::find(std::begin(K.short_mr), std::end(K.short_mr), r) != std::end(K.short_mr);
    if (all) return s;
  }
  return mr;
}

GemmRect plan_thread_rect(const GemmPlan& p, int t) {
  const index_t m = p.shape.m, n = p.shape.n;
  const index_t mt = (m + p.row_step - 1) / p.row_step, ntl = (n + p.nr - 1) / p.nr;
  // Units split as evenly as possible: the first (mt % tm) parts get one more.
  auto part = [](index_t tiles, int parts, int idx, int width, index_t limit, index_t* beg,
                 index_t* end) {
    const index_t base = tiles / parts, extra = tiles % parts;
    const index_t t0 = idx * base + std::min<index_t>(idx, extra);
    const index_t t1 = t0 + base + (idx < extra ? 1 : 0);
    *beg = std::min(limit, t0 * width);
    *end = std::min(limit, t1 * width);
  };
  GemmRect r;
  part(mt, p.tm, t / p.tn, p.row_step, m, &r.i0, &r.i1);
  part(ntl, p.tn, t % p.tn, p.nr, n, &r.j0, &r.j1);
  return r;
}

RectPlan plan_rect(const GemmShape& s, const GemmBlocking& K, bool narrow, bool transposed_c) {
  RectPlan R;
  R.mr = narrow ? K.narrow_mr : K.mr;
  R.nr = narrow ? K.narrow_nr : K.nr;
  R.mc = K.mc;
  R.kc = K.kc;
  R.nc = K.nc;
  R.transposed_c = transposed_c;
  const int MR = R.mr, NR = R.nr;
  const double es = double(s.elem_size);
  const std::size_t esz = std::size_t(s.elem_size);
  // In place along k (each k step a new row of the operand) only while the
  // operand is small enough to stay cached: beyond that, every k step of a
  // micro-kernel touches a new page and packing is cheaper than the misses.
  const double kDirectBytes = 512.0 * 1024.0;

  // Row-major A streams well in place while its block stays in L2-sized
  // reach; a larger A is packed, so that the ic block is contiguous. So is an
  // A whose row stride is a multiple of 4 KiB: the MR rows a micro-kernel
  // reads side by side would all map to one L1 set and evict each other
  // (256x1024 f32 dZ W: 85 -> 95 GFLOP/s packed), unless C is so narrow that
  // each A row is used once and packing would double the traffic. op(A) = A^T
  // is read in place k-major while it stays within the limit.
  if (!K.direct) {
    R.a_why = PackWhy::no_direct;
  } else if (s.ta == Trans::N) {
    if (!(double(s.m) * double(s.lda) * es <= 4 * kDirectBytes))
      R.a_why = PackWhy::size;
    else if ((std::size_t(s.lda) * esz) % 4096 == 0 && s.n > 2 * NR)
      R.a_why = PackWhy::conflicts;
    else
      R.a = ARoute::rows;
  } else {
    if (double(s.k) * double(s.lda) * es <= kDirectBytes)
      R.a = ARoute::kstrided;
    else
      R.a_why = PackWhy::size;
  }

  // B read in place brings one row of NR elements per k step. When that row
  // is a single cache line and the row stride a multiple of 1 KiB (layers 256
  // or 1024 wide), successive rows fall into a few L1 sets and evict each
  // other: pack instead (AVX2 float32, 256x256x128 dW: 98 -> 118 GFLOP/s).
  if (!K.direct)
    R.b_why = PackWhy::no_direct;
  else if (s.tb == Trans::T)
    R.b_why = PackWhy::transposed;
  else if (!(double(s.k) * double(s.ldb) * es <= kDirectBytes))
    R.b_why = PackWhy::size;
  else if ((std::size_t(s.ldb) * esz) % 1024 == 0 && std::size_t(NR) * esz <= 64)
    R.b_why = PackWhy::conflicts;
  else
    R.b = BRoute::rows;

  // An edge column tile at most half as wide as the register tile runs the
  // one-vector kernel of the same height (it reads the same B panel through
  // its stride): half the multiply-adds, same result.
  R.narrow_edge_nr = (K.narrow_mr == MR && K.narrow_nr * 2 == NR) ? NR / 2 : 0;

  // Normally ir runs fastest, so consecutive tiles reuse the B sliver from
  // L1/L2. With a short k block (an output layer's dX = dZ W, k = 10)
  // writing C is most of the work, and when C's rows lie a multiple of 4 KiB
  // apart, walking down a column strip puts every row of every tile in the
  // same L1 set: then jr runs fastest, so that consecutive tiles are
  // neighbours in C (f32 256x1024x10: 62 -> 172 GFLOP/s). For other strides,
  // and for the swapped route (which writes C through a tile buffer), the
  // usual order measured faster.
  constexpr index_t kShortK = 32;
  const bool c_rows_alias = !transposed_c && (std::size_t(s.ldc) * esz) % 4096 == 0;
  auto order_for = [&](index_t kc) {
    return kc < kShortK && c_rows_alias ? TileOrder::jr_fastest : TileOrder::ir_fastest;
  };
  R.order = order_for(std::min(K.kc, s.k));
  R.order_last = order_for((s.k - 1) % K.kc + 1);
  return R;
}

template <class T>
void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
          const T* b, index_t ldb, T beta, T* c, index_t ldc, const Epilogue<T>* ep) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == T(0)) {
    scale_c(beta, c, ldc, m, n);
    if (working(ep)) apply_epilogue(active_gemm_kernel<T>(), *ep, c, ldc, 0, m, 0, n);
    return;
  }
  const GemmKernel<T>& K = active_gemm_kernel<T>();
  const GemmBlocking B = blocking_of(K);
  const GemmShape s{ta, tb, m, n, k, lda, ldb, ldc, int(sizeof(T))};
  const GemmPlan P = plan_gemm(s, B, num_threads());
  if (P.swapped)
    gemm_run(K, B, P, alpha, b, a, beta, c, ep);
  else
    gemm_run(K, B, P, alpha, a, b, beta, c, ep);
}

template <class T>
void gemm_pieces(Trans ta, Trans tb, index_t m, index_t n, const T* a, index_t lda, const T* b,
                 index_t ldb, index_t ldc, const PieceSums<T>& ps) {
  if (ps.pieces <= 0 || ps.kb[0] != 0 || ps.n_groups <= 0 || ps.groups[0] != 0 ||
      ps.groups[ps.n_groups] != ps.pieces)
    throw std::invalid_argument("gemm_pieces: the pieces and groups must cover k");
  for (index_t q = 0; q < ps.pieces; ++q)
    if (ps.kb[q + 1] <= ps.kb[q])
      throw std::invalid_argument("gemm_pieces: every piece needs rows");
  if (m <= 0 || n <= 0) return;
  const index_t k = ps.kb[ps.pieces];
  if (k > gemm_pieces_max_k<T>())
    throw std::invalid_argument("gemm_pieces: k = " + std::to_string(k) +
                                " is above the rows it packs whole (gemm_pieces_max_k)");
  const GemmKernel<T>& K = active_gemm_kernel<T>();
  const GemmBlocking B = blocking_of(K);
  const GemmShape s{ta, tb, m, n, k, lda, ldb, ldc, int(sizeof(T))};
  const GemmPlan P = plan_gemm(s, B, num_threads());
  const GemmShape& ps_shape = P.shape;
  const Ukr<T>& U = P.narrow ? K.narrow : K.wide;
  const T* pa = P.swapped ? b : a;
  const T* pb = P.swapped ? a : b;
  run_plan(B, P, [&](const GemmRect& r, const RectPlan& R) {
    // Every piece within the one packed k block; each piece's chain still
    // split at gemm()'s k block.
    RectPlan whole = R;
    whole.kc = std::max<index_t>(R.kc, k);
    PieceSums<T> mine = ps;
    mine.kc = R.kc;
    gemm_rect(K, U, whole, ps_shape.ta, ps_shape.tb, r, k, T(1), pa, ps_shape.lda, pb,
              ps_shape.ldb, T(0), static_cast<T*>(nullptr), ps_shape.ldc,
              static_cast<const Epilogue<T>*>(nullptr), &mine);
  });
}

template <class T>
index_t gemm_pieces_max_k() {
  return 2 * active_gemm_kernel<T>().kc;
}

std::vector<index_t> piece_tree_groups(index_t pieces, index_t first, index_t total) {
  std::vector<index_t> groups;
  if (total <= 0) {
    for (index_t q = 0; q <= pieces; ++q) groups.push_back(q);
    return groups;
  }
  const index_t p0 = first, p1 = first + pieces;
  auto walk = [&](auto&& self, index_t a, index_t b) -> void {
    if (b <= p0 || a >= p1) return;
    if (a >= p0 && b <= p1) {
      groups.push_back(a - p0);
      return;
    }
    const index_t mid = (a + b) / 2;
    self(self, a, mid);
    self(self, mid, b);
  };
  walk(walk, 0, total);
  groups.push_back(pieces);
  return groups;
}

template <class T>
void gemm_naive(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a,
                index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      T s = T(0);
      for (index_t p = 0; p < k; ++p) {
        T av = ta == Trans::N ? a[i * lda + p] : a[p * lda + i];
        T bv = tb == Trans::N ? b[p * ldb + j] : b[j * ldb + p];
        s += av * bv;
      }
      c[i * ldc + j] = beta == T(0) ? alpha * s : alpha * s + beta * c[i * ldc + j];
    }
}

void gemm_bf16(Trans ta, Trans tb, index_t m, index_t n, index_t k, float alpha, const float* a,
               index_t lda, const float* b, index_t ldb, float beta, float* c, index_t ldc,
               const Epilogue<float>* ep) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0 || alpha == 0.0f) {
    scale_c(beta, c, ldc, m, n);
    if (working(ep)) apply_epilogue(active_gemm_kernel<float>(), *ep, c, ldc, 0, m, 0, n);
    return;
  }
  const Bf16Kernel& K = active_bf16_kernel();
  const GemmBlocking B = blocking_of(K);
  // elem_size: of C; A and B are always packed.
  const GemmShape s{ta, tb, m, n, k, lda, ldb, ldc, int(sizeof(float))};
  const GemmPlan P = plan_gemm(s, B, num_threads());
  const float* pa = P.swapped ? b : a;
  const float* pb = P.swapped ? a : b;
  const GemmShape& ps = P.shape;
  run_plan(B, P, [&](const GemmRect& r, const RectPlan& R) {
    gemm_rect_bf16(K, R, P.narrow, ps.ta, ps.tb, r, k, alpha, pa, ps.lda, pb, ps.ldb, beta, c,
                   ldc, ep);
  });
}

index_t bf16_panel_words(index_t k, index_t n) {
  const int nr = active_bf16_kernel().nr;
  return (n + nr - 1) / nr * nr * ((k + 1) / 2);
}

int bf16_panel_nr() { return active_bf16_kernel().nr; }

void pack_bf16_panel(std::uint32_t* dst, Trans tb, const float* b, index_t ldb, index_t k,
                     index_t n, index_t j0, index_t nj, index_t p0, index_t kc) {
  const Bf16Kernel& K = active_bf16_kernel();
  const PackBf16Fn pack = K.pack_panel ? K.pack_panel : K.pack ? K.pack : &pack_bf16_pairs;
  const index_t stride = index_t(K.nr) * ((k + 1) / 2);
  if (j0 < 0 || p0 < 0 || j0 + nj > n || p0 + kc > k || p0 % 2 || j0 % K.nr)
    throw std::logic_error("pack_bf16_panel: block outside the panel or off its grid");
  if (nj <= 0 || kc <= 0) return;
  pack(dst + (j0 / K.nr) * stride + (p0 / 2) * K.nr, tb == Trans::T, b, ldb, j0, nj, p0, kc, K.nr,
       stride);
}

void gemm_bf16_panel(Trans ta, Trans tb, index_t m, index_t n, index_t k, float alpha,
                     const float* a, index_t lda, const float* b, index_t ldb,
                     const Bf16Panel& panel, float beta, float* c, index_t ldc,
                     const Epilogue<float>* ep) {
  if (m <= 0 || n <= 0 || k <= 0 || alpha == 0.0f)
    return gemm_bf16(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ep);
  const Bf16Kernel& K = active_bf16_kernel();
  const GemmBlocking B = blocking_of(K);
  const GemmShape s{ta, tb, m, n, k, lda, ldb, ldc, int(sizeof(float))};
  const GemmPlan P = plan_gemm(s, B, num_threads(), true);
  if (P.swapped || P.narrow || panel.nr != K.nr || panel.k != k || panel.n != n || !panel.data ||
      B.kc % 2)
    return gemm_bf16(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, ep);
  run_plan(B, P, [&](const GemmRect& r, const RectPlan& R) {
    gemm_rect_bf16(K, R, false, ta, tb, r, k, alpha, a, lda, b, ldb, beta, c, ldc, ep, &panel);
  });
}

void round_bf16_array(float* y, const float* x, index_t n) {
  for (index_t i = 0; i < n; ++i) y[i] = round_bf16(x[i]);
}

template void gemm<float>(Trans, Trans, index_t, index_t, index_t, float, const float*, index_t,
                          const float*, index_t, float, float*, index_t, const Epilogue<float>*);
template void gemm<double>(Trans, Trans, index_t, index_t, index_t, double, const double*, index_t,
                           const double*, index_t, double, double*, index_t,
                           const Epilogue<double>*);
template void gemm_pieces<float>(Trans, Trans, index_t, index_t, const float*, index_t,
                                 const float*, index_t, index_t, const PieceSums<float>&);
template void gemm_pieces<double>(Trans, Trans, index_t, index_t, const double*, index_t,
                                  const double*, index_t, index_t, const PieceSums<double>&);
template index_t gemm_pieces_max_k<float>();
template index_t gemm_pieces_max_k<double>();
template void gemm_naive<float>(Trans, Trans, index_t, index_t, index_t, float, const float*,
                                index_t, const float*, index_t, float, float*, index_t);
template void gemm_naive<double>(Trans, Trans, index_t, index_t, index_t, double, const double*,
                                 index_t, const double*, index_t, double, double*, index_t);

}  // namespace fastmlp
