// The single GEMM entry point of fastmlp. Every matrix product in the core
// (forward, both backward products, fm.ops.matmul) goes through gemm().
// Python twin: fastmlp.reference.matmul.
//
//   C = alpha * op(A) * op(B) + beta * C        op(A): m x k, op(B): k x n
//
// Row-major; op(X) = X or X^T as the Trans flag says; ld* are row strides in
// elements. beta == 0 never reads C (it may hold NaN). Transposes are absorbed
// by packing or by the kernel's A layout (k-major or row-major, ukr.h): B
// always reaches a kernel as rows of NR elements, A as either layout.
//
// Determinism: threads own disjoint rectangles of C (columns on register-tile
// boundaries, rows on GemmPlan::row_step), never a share of k. Each element
// of C is accumulated by one thread, over k in a fixed order that does not
// depend on the thread count, so results are bitwise identical for any
// number of threads.
//
// The optional epilogue runs after the last k block of each mc x nc block of
// C, while the block is still in L2 (in the swapped route, on each
// micro-tile as it is written back): C += bias (per column), then y = act(C)
// if y is given (C keeps the pre-activation z). With k == 0 or alpha == 0 it
// runs once over all of C after C = beta * C.
//
// Deciding is separate from doing: plan_gemm() and plan_rect() below choose
// the route of a product from its shape alone, and the loops of
// gemm_driver.cpp follow that plan without choices of their own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/types.h"

namespace fastmlp {

template <class T>
struct Epilogue {
  const T* bias = nullptr;  // (n), added to every row of C; nullptr: none
  Act act = Act::identity;  // applied when y != nullptr
  T* y = nullptr;           // (m, n) with row stride ldy; may equal C
  index_t ldy = 0;
  // A hint, not a step: C is written once and not read again soon (a weight
  // gradient), so a thread's share of at least kStreamBytes with beta == 0,
  // one k block and neither bias nor y may be stored around the caches
  // (non-temporal stores of whole lines; the values are the same).
  bool stream = false;
  // float only: y also in bf16, in the layout of a B panel whose k runs along
  // y's rows (Bf16Panel: pairs of rows in y_panel_nr-column slivers,
  // y_panel_stride words apart), each block written while it is in cache.
  // mixed_bfloat16 gives it for a layer's output, which the next layer's
  // weight gradient reads as its B operand (no packing there). nullptr: none.
  std::uint32_t* y_panel = nullptr;
  index_t y_panel_stride = 0;
  int y_panel_nr = 0;
};

// The smallest share of C (bytes per thread) that Epilogue::stream streams:
// a core's L2 on Zen 4.
inline constexpr index_t kStreamBytes = index_t(1) << 20;

template <class T>
void gemm(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a, index_t lda,
          const T* b, index_t ldb, T beta, T* c, index_t ldc, const Epilogue<T>* ep = nullptr);

// Products over pieces of k, added in a fixed tree (the reproducible
// data-parallel reduction, network.h DataParallel): k is cut into pieces
// [kb[q], kb[q+1]), q < pieces, and group g of consecutive pieces
// [groups[g], groups[g+1]) gives
//   C_g = the sum of op(A) op(B) over each piece's k range,
// the pieces' products added in the binary tree that splits the global piece
// indices [a, b) at (a + b) / 2 (local piece q is global piece first + q;
// each group must be one node of that tree). Each piece's product is the
// plain chain over its own k from zero that gemm() forms for that piece
// alone (in k blocks of gemm()'s size from the piece's first row, each block
// added to the sum before it), and each tree node is formed as x = x + y
// elementwise, so C_g holds
// the bits that the pieces' separate products added node by node would give,
// whatever other pieces a call holds; but each micro-tile's pieces are added
// while in L1, and no product of a piece is ever written to memory.
template <class T>
struct PieceSums {
  const index_t* kb = nullptr;      // pieces + 1 bounds along k, from 0 to k
  index_t pieces = 0;
  index_t first = 0;                // global index of local piece 0
  const index_t* groups = nullptr;  // n_groups + 1 local piece bounds, from 0 to pieces
  index_t n_groups = 0;
  T* const* c = nullptr;            // group g's result (m x n, row stride ldc), overwritten
  index_t kc = 0;  // set by gemm_pieces: gemm()'s k block, which splits a longer piece's chain
};

template <class T>
void gemm_pieces(Trans ta, Trans tb, index_t m, index_t n, const T* a, index_t lda, const T* b,
                 index_t ldb, index_t ldc, const PieceSums<T>& ps);

// The largest k that gemm_pieces packs whole (two of gemm()'s k blocks): a
// caller with more rows forms the pieces' products apart (the same bits).
template <class T>
index_t gemm_pieces_max_k();

// The groups of PieceSums for local pieces [first, first + pieces) of a tree
// over total pieces: the nodes that lie wholly within them and inside no
// larger such node, as local piece bounds (from 0 to pieces). total <= 0:
// no tree, each piece a group of its own.
std::vector<index_t> piece_tree_groups(index_t pieces, index_t first, index_t total);

// The straightforward triple loop, kept as the in-C++ reference for the
// blocked path (tests compare the two through fm.ops).
template <class T>
void gemm_naive(Trans ta, Trans tb, index_t m, index_t n, index_t k, T alpha, const T* a,
                index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc);

// Name of the micro-kernel in use ("generic", "avx2", "avx512"), for show_config().
const char* gemm_kernel_name();

// Instruction-set paths: those this CPU runs, the best of them, and a switch
// (std::invalid_argument naming FASTMLP_ISA for an unknown or unsupported
// path). init_gemm_dispatch() applies FASTMLP_ISA or the best path; the
// module calls it at import so that a bad FASTMLP_ISA fails there.
std::vector<std::string> supported_gemm_isas();
std::string best_gemm_isa();
void set_gemm_isa(const std::string& isa);
void init_gemm_dispatch();

// ---------------------------------------------------------------------------
// Plans. A route never changes a value (packing copies, and every element is
// summed over k in increasing order in every route), only the speed, so the
// rules below are measured choices, documented where they are decided
// (gemm_driver.cpp). Python twin: fastmlp.ops.gemm_plan.

// What a plan needs to know of an instruction set's kernels (ukr.h GemmKernel).
// Shorter tiles a kernel may have for edge slivers (ukr.h ShortRows).
constexpr int kShortRows = 3;

struct GemmBlocking {
  int mr = 1, nr = 1;                // wide register tile (rows x columns of C)
  int narrow_mr = 1, narrow_nr = 1;  // one-vector tile
  index_t mc = 1, kc = 1, nc = 1;    // cache blocks: A block mc x kc, B panel kc x nc
  bool direct = false;               // full tiles may read operands in place
  int short_mr[kShortRows] = {};     // rows of the edge slivers' shorter tiles (ukr.h
                                     // ShortRows), ascending; 0: none
  const char* name = "";             // "generic", "avx2", "avx512"
};

// The blocking of a compiled path (`dbl`: the float64 kernels), whether or
// not this CPU runs it; std::invalid_argument naming `isa` for an unknown one.
GemmBlocking gemm_blocking(const std::string& isa, bool dbl);

// C (m x n) = op(A) (m x k) op(B) (k x n); ld* row strides in elements.
struct GemmShape {
  Trans ta = Trans::N, tb = Trans::N;
  index_t m = 0, n = 0, k = 0;
  index_t lda = 0, ldb = 0, ldc = 0;
  int elem_size = 4;  // sizeof(T)
};

// How op(A) reaches the micro-kernel for full MR-row tiles. Edge tiles (fewer
// than MR rows) are always packed, zero-padded, one sliver per mc block.
enum class ARoute : std::uint8_t {
  packed,    // each mc x kc block packed into k-major MR-row slivers
  rows,      // op(A) = A read in place by the row-major kernel
  kstrided,  // op(A) = A^T read in place by the k-major kernel
};
// How op(B) reaches the micro-kernel for full NR-column tiles. In place, an
// edge sliver (fewer than NR columns) is packed, zero-padded.
enum class BRoute : std::uint8_t {
  packed,  // each kc x nc panel packed into NR-column slivers
  rows,    // op(B) = B read in place, one row of NR elements per k step
};
// Why an operand is packed.
enum class PackWhy : std::uint8_t {
  none,        // not packed
  no_direct,   // the path's kernels read packed panels only (generic)
  transposed,  // op(B) = B^T: no kernel reads it in place
  size,        // beyond the read-in-place size limit
  conflicts,   // rows of the operand map to a few L1 sets (A: stride a multiple
               // of 4 KiB; B: 1 KiB with rows of one cache line)
};
// Order of the micro-tiles inside an mc x nc block.
enum class TileOrder : std::uint8_t {
  ir_fastest,  // down a column strip: one B sliver reused from L1
  jr_fastest,  // along a row strip: neighbouring tiles of C
};

// The route of one rectangle of C (one thread's share).
struct RectPlan {
  int mr = 1, nr = 1;                   // register tile of the kernel in use
  index_t mc = 1, kc = 1, nc = 1;       // cache blocks
  ARoute a = ARoute::packed;
  PackWhy a_why = PackWhy::none;
  BRoute b = BRoute::packed;
  PackWhy b_why = PackWhy::none;
  int narrow_edge_nr = 0;               // an edge tile at most this many columns wide
                                        // runs the narrow kernel (0: never)
  TileOrder order = TileOrder::ir_fastest;       // k blocks of kc
  TileOrder order_last = TileOrder::ir_fastest;  // the last k block (the only one
                                                 // when k <= kc)
  bool transposed_c = false;            // tiles written to C transposed (swapped plan)
};

// The route of a whole product.
struct GemmPlan {
  bool swapped = false;  // computes C^T = op(B)^T op(A)^T (shape below is that product)
  bool narrow = false;   // the one-vector kernel for every tile
  int mr = 1, nr = 1;    // its register tile
  GemmShape shape;       // the product the kernel computes
  int threads = 1;       // threads that run it
  int tm = 1, tn = 1;    // their grid of rectangles over shape.m x shape.n
  int row_step = 1;      // rectangles' rows start at multiples of this: mr, or the
                         // shortest edge kernel's rows when every multiple of them
                         // up to mr has a kernel of its own (row_step_of)
};

// The finest row boundary at which threads may split a product of tile
// height mr without leaving a sliver that no kernel fits exactly: the
// smallest even s of K.short_mr (for a plan of K's wide or narrow height)
// whose multiples below mr are all short tiles and which divides mr; mr
// itself when there is none (AVX-512 float32 and bf16: 4 of 12; float64
// and AVX2: 2 of 6; generic: mr).
int row_step_of(const GemmBlocking& K, int mr);

// Rows [i0, i1) and columns [j0, j1) of the product a plan computes.
struct GemmRect {
  index_t i0 = 0, i1 = 0, j0 = 0, j1 = 0;
};

// Pure functions of their arguments. plan_gemm: m, n, k >= 1; `threads` is
// the number available (num_threads() in gemm()); the plan may use fewer.
// b_panel: B is a prepacked bf16 panel (gemm_bf16_panel), which changes only
// how threads split the product.
GemmPlan plan_gemm(const GemmShape& s, const GemmBlocking& K, int threads, bool b_panel = false);
// Thread t's rectangle (t < p.threads): columns on register-tile boundaries,
// rows on multiples of p.row_step, each as even as possible.
GemmRect plan_thread_rect(const GemmPlan& p, int t);
// The route of a rectangle: s.m x s.n its size, the rest as in the product;
// narrow and transposed_c as the product's plan says (narrow, swapped).
RectPlan plan_rect(const GemmShape& s, const GemmBlocking& K, bool narrow, bool transposed_c);

// Measured FMA throughput of one path: `threads` threads each run
// independent FMA chains for about `seconds`; returns GFLOP/s (all threads).
double fma_peak_gflops(const std::string& isa, bool dbl, int threads, double seconds);

// ---------------------------------------------------------------------------
// bf16 GEMM, float32 in and out:
//
//   C = alpha * bf16(op(A)) * bf16(op(B)) + beta * C
//
// with bf16() the round-to-nearest-even of common/bf16.h, applied while the
// operands are packed (no separate conversion pass), and the products summed
// in float32. Same layout, transposes, beta rule and thread split (output
// tiles only: bitwise identical for any thread count) and epilogue as
// gemm() (the same code: bias and activation in float32 on the float32
// accumulators, so a forward layer stays one pass); the plans are gemm()'s,
// with every operand packed. Python twin: a float32 product of
// fastmlp.reference.round_bf16 of each operand (fastmlp.ops.matmul_bf16).
void gemm_bf16(Trans ta, Trans tb, index_t m, index_t n, index_t k, float alpha, const float* a,
               index_t lda, const float* b, index_t ldb, float beta, float* c, index_t ldc,
               const Epilogue<float>* ep = nullptr);

// A bf16 B operand packed once for many products: the weights of a
// mixed_bfloat16 layer, packed when they change, not in every product.
// op(B) (k x n) as slivers of nr columns, each the (k + 1) / 2 pairs of k
// in order (sliver s at data + s * stride(), pair q of column s*nr + j at
// [q * nr + j], an odd k's last pair and the columns past n zero): the
// layout gemm_bf16 packs each B panel into, over the whole k, so that a
// product reads it in place at any k block. Built for one bf16 kernel (nr
// is its wide tile's width) by pack_bf16_panel.
struct Bf16Panel {
  const std::uint32_t* data = nullptr;
  index_t k = 0, n = 0;
  int nr = 0;
  index_t stride() const { return index_t(nr) * ((k + 1) / 2); }
};

// Words a panel of op(B) (k x n) needs with the active bf16 kernel, and its nr.
index_t bf16_panel_words(index_t k, index_t n);
int bf16_panel_nr();

// Packs columns [j0, j0 + nj) and k rows [p0, p0 + kc) of op(B) (k x n; ldb
// the row stride of b) into the panel at dst (for the active kernel); p0 even,
// j0 a multiple of nr, and j0 + nj == n unless it is too. The whole panel:
// j0 = p0 = 0, nj = n, kc = k. Parts let the optimizer write the panel of the
// rows it has just updated. Single-threaded.
void pack_bf16_panel(std::uint32_t* dst, Trans tb, const float* b, index_t ldb, index_t k,
                     index_t n, index_t j0, index_t nj, index_t p0, index_t kc);

// gemm_bf16 with B read from its panel instead of packed from b: the same
// values, bit for bit (the panel holds what the packing would produce, or,
// for float32 denormals, words that the kernel multiplies alike). The
// plans that B's panel does not fit (swapped or one-vector-wide: thin C, as
// an output layer's forward) and a panel of another kernel fall back to
// gemm_bf16 on b, which must therefore be op(B)'s float32 source with ldb.
void gemm_bf16_panel(Trans ta, Trans tb, index_t m, index_t n, index_t k, float alpha,
                     const float* a, index_t lda, const float* b, index_t ldb,
                     const Bf16Panel& panel, float beta, float* c, index_t ldc,
                     const Epilogue<float>* ep = nullptr);

// y[i] = round_bf16(x[i]) (y may equal x).
void round_bf16_array(float* y, const float* x, index_t n);

// The bf16 kernel in use: "avx512_bf16" (VDPBF16PS) or "generic" (portable,
// float32 arithmetic on the rounded values). It follows the GEMM path:
// FASTMLP_ISA=avx512 takes avx512_bf16 where the CPU has it; generic and
// avx2 take the portable kernel; FASTMLP_ISA=avx512_bf16 insists on
// VDPBF16PS (an error without it) and FASTMLP_ISA=generic_bf16 forces the
// portable kernel with the best float paths (dispatch.cpp).
const char* bf16_kernel_name();
// Whether this CPU and OS run AVX512-BF16 (cpuid leaf 7 subleaf 1, EAX bit 5,
// plus AVX-512 state enabled by the OS), unless FASTMLP_HIDE_ISA hides it.
bool cpu_has_bf16();
// The bf16 kernels this CPU runs ("generic" first).
std::vector<std::string> supported_bf16_isas();
// The blocking of a compiled bf16 kernel ("generic", "avx512_bf16").
GemmBlocking gemm_blocking_bf16(const std::string& isa);

}  // namespace fastmlp
