// Micro-kernel contract and the blocking table of each instruction set.
//
// A micro-kernel computes one MR x NR tile of C:
//   C[i][j] = alpha * sum_p A(i, p) * B(p, j) + beta * C[i][j]
// for i < m <= MR and j < n <= NR (edge tiles are masked on write-back;
// beta == 0 never reads C). The sum over p runs in increasing p.
//
// B(p, j) = b[p*ldb + j] for j < NR: a packed sliver (ldb = NR, zero-padded
// columns) or, for a full-width tile, rows of a row-major operand read in
// place. A comes in two layouts, one kernel each:
//   k-major   A(i, p) = a[p*lda + i]  (packed sliver: lda = MR; or op(A) = A^T
//                                      read in place)
//   row-major A(i, p) = a[i*lda + p]  (op(A) = A read in place)
// Read in place, A and B must hold all MR rows / NR columns (full tiles);
// edge tiles are packed with zero padding, so a kernel never reads outside
// the operands.
#pragma once

#include <cstdint>

#include "common/types.h"
#include "gemm/gemm.h"
#include "nn/activations.h"

namespace fastmlp {

template <class T>
using UkrFn = void (*)(index_t kc, const T* a, index_t lda, const T* b, index_t ldb, T* c,
                       index_t ldc, index_t m, index_t n, T alpha, T beta);

template <class T>
struct Ukr {
  UkrFn<T> kmajor;  // A(i, p) = a[p*lda + i]
  UkrFn<T> rowmajor;  // A(i, p) = a[i*lda + p]
  int mr, nr;       // register tile
};

// Packs op(B) = B^T (B row-major n x k): dst[p*NR + j] = b[(j0 + j)*ldb + p0 + p]
// for p < kc, j < nr, zero for nr <= j < NR. A row-major A sliver is the same
// copy (MR for NR), so the driver packs those with it too. nullptr: the
// driver's scalar loops.
template <class T>
using PackBtFn = void (*)(T* dst, const T* b, index_t ldb, index_t p0, index_t kc, index_t j0,
                          index_t nr, int NR);

// y[i] = act(z[i]) for i < len (y may equal z), at the unit's vector width,
// for act tanh or sigmoid only (the ones worth it). nullptr: the baseline
// loops of nn/activations.h, which give the same values.
template <class T>
using ActRunFn = void (*)(T* y, const T* z, index_t len, Act act);

// dz[i] = dy[i] * act'(z[i]) for i < len (dz may equal dy), at the unit's
// width, for tanh or sigmoid only: their exact derivatives need an exp per
// element (nn/activations.h). nullptr: the baseline loops, same values.
template <class T>
using ActBackRunFn = void (*)(T* dz, const T* dy, const T* z, index_t len, Act act);

// Whether p starts a cache line: where a kernel may store a whole line with
// a non-temporal store (the streaming variants below, Epilogue::stream).
inline bool starts_line(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 63) == 0; }

// Kernels of fewer rows than the tile for an edge sliver (mr < MR rows of a
// packed, k-major A sliver, read with its stride MR): the same sums in the
// same order as the full tile's rows, without the multiply-adds of its
// zero-padded rows (a batch of 256 is 21 tiles of 12 rows and one of 4, where
// the full tile would spend 3% of the product on zeros; 100 rows: 7%; the
// weight gradient of a 10-class output layer is one sliver of 10 rows).
template <class Fn>
struct ShortRows {
  int mr = 0;            // rows; 0: none
  Fn wide = nullptr;     // the wide tile's width
  Fn narrow = nullptr;   // the narrow tile's width
};

// The kernel for an edge sliver of mr rows, packed k-major at stride MR, of
// a tile f (MR rows) of the wide or the narrow width: the shortest of the
// short kernels that holds mr rows and is shorter than f, or f itself.
template <class Fn>
inline Fn shortest_rows(const ShortRows<Fn> (&rows)[kShortRows], bool narrow, index_t mr, int MR,
                        Fn f) {
  for (const ShortRows<Fn>& s : rows)
    if (s.mr > 0 && mr <= s.mr && s.mr < MR) return narrow ? s.narrow : s.wide;
  return f;
}

template <class T>
struct GemmKernel {
  Ukr<T> wide;           // the main tile
  Ukr<T> narrow;         // one vector wide, same height: results with few columns, and
                         // edge tiles at most half the wide tile's width
  index_t mc, kc, nc;    // cache blocks: A block mc x kc (L2), B panel kc x nc (L3)
  bool direct;           // full tiles may read operands in place (see plan_rect)
  PackBtFn<T> pack_bt;   // vectorized transposing pack of B, or nullptr
  ActRunFn<T> act_run;   // activation forward at this ISA's width, or nullptr
  ActBackRunFn<T> act_back_run;  // activation backward at this ISA's width, or nullptr
  const char* name;
  Ukr<T> wide_stream{};  // wide, storing a full tile's rows that start a cache line around
                         // the caches (Epilogue::stream, gemm_run), or empty: wide
  ShortRows<UkrFn<T>> short_rows[kShortRows]{};  // edge slivers' kernels (empty: the full tile's)
};

template <class T>
inline UkrFn<T> edge_rows_kernel(const GemmKernel<T>& K, bool narrow, index_t mr, int MR,
                                 UkrFn<T> f) {
  return shortest_rows(K.short_rows, narrow, mr, MR, f);
}

// What the plans need of K (gemm.h).
template <class T>
inline GemmBlocking blocking_of(const GemmKernel<T>& K) {
  GemmBlocking b;
  b.mr = K.wide.mr;
  b.nr = K.wide.nr;
  b.narrow_mr = K.narrow.mr;
  b.narrow_nr = K.narrow.nr;
  b.mc = K.mc;
  b.kc = K.kc;
  b.nc = K.nc;
  b.direct = K.direct;
  for (int i = 0; i < kShortRows; ++i) b.short_mr[i] = K.short_rows[i].mr;
  b.name = K.name;
  return b;
}

// The kernel chosen for this machine (see dispatch.cpp).
template <class T>
const GemmKernel<T>& active_gemm_kernel();

// act_forward_run at the active ISA's width where it has a faster loop.
template <class T>
inline void act_forward_fast(const GemmKernel<T>& K, T* y, const T* z, index_t len, Act act) {
  if (K.act_run && (act == Act::tanh || act == Act::sigmoid))
    K.act_run(y, z, len, act);
  else
    act_forward_run(y, z, len, act);
}

// act_backward_run at the active ISA's width where it has a faster loop.
template <class T>
inline void act_backward_fast(const GemmKernel<T>& K, T* dz, const T* dy, const T* z, const T* y,
                              index_t len, Act act) {
  if (K.act_back_run && (act == Act::tanh || act == Act::sigmoid))
    K.act_back_run(dz, dy, z, len, act);
  else
    act_backward_run(dz, dy, z, y, len, act);
}

// Largest MR x NR of any kernel (the transposed write-back's tile buffer).
constexpr int kMaxTile = 12 * 32;

// One namespace per instruction set, each compiled in its own file with its
// own flags. fma_probe runs `iters` rounds of independent FMA chains on the
// calling thread, sets *flops to the flops done and returns a value that
// depends on all of them.
namespace generic {
extern const GemmKernel<float> kSgemm;
extern const GemmKernel<double> kDgemm;
}  // namespace generic
#if defined(FASTMLP_HAVE_X86_KERNELS)
namespace avx2 {
extern const GemmKernel<float> kSgemm;
extern const GemmKernel<double> kDgemm;
double fma_probe(bool dbl, long long iters, double* flops);
}  // namespace avx2
namespace avx512 {
extern const GemmKernel<float> kSgemm;
extern const GemmKernel<double> kDgemm;
double fma_probe(bool dbl, long long iters, double* flops);
}  // namespace avx512
#endif

// ---------------------------------------------------------------------------
// bf16 micro-kernels (gemm_bf16). Both operands arrive packed, as pairs of bf16
// values along k in one 32-bit word (low half: the even k, high half: the
// next one; an odd k's last word is padded with bf16 zero):
//   A pair q of row i:    a[q*MR + i]
//   B pair q of column j: b[q*ldb + j]  (ldb = NR of the packed panel, which a
//                                        narrow kernel reads too)
// so that one VDPBF16PS lane multiplies the pair (A(i, 2q), A(i, 2q+1)), a
// broadcast word, with the pair of B in that column and adds both products
// to the float32 accumulator. The kernel computes, for i < m <= MR and
// j < n <= NR,  C[i][j] = alpha * sum_q (A B products of pair q) + beta * C[i][j]
// (beta == 0 never reads C), pairs in increasing q.
using UkrBf16Fn = void (*)(index_t kp, const std::uint32_t* a, const std::uint32_t* b, index_t ldb,
                           float* c,
                           index_t ldc, index_t m, index_t n, float alpha, float beta);

// Packs rows r0..r0+rows of an operand into slivers of R rows of bf16 pairs,
// sliver s at dst + s*ss (ss >= R*kp, kp = (kc+1)/2): dst[s*ss + q*R + r] =
// (X(s*R + r, 2q), X(s*R + r, 2q+1)) rounded as common/bf16.h rounds (bit for
// bit; a kernel that reads bf16 denormals as zero, as VDPBF16PS does, may
// pack with a conversion that reads float32 denormals as zero too, and then
// its words differ from these for such inputs but its products do not: the
// AVX512-BF16 unit's packing, whose words only its own kernels may read),
// X(r, p) = x[(r0 + r)*ldx + p0 + p] when k_contig, else
// x[(p0 + p)*ldx + r0 + r]; the last sliver's rows beyond `rows` are zero, as
// is an odd kc's last half pair. A whole A block or B panel in one call, so
// that the source can be read in its own row order; ss > R*kp writes k rows
// p0.. into a panel packed over a longer k (gemm.h, Bf16Panel). See
// pack_bf16_pairs in gemm_driver.cpp, the scalar version used when a kernel
// has none.
using PackBf16Fn = void (*)(std::uint32_t* dst, bool k_contig, const float* x, index_t ldx,
                            index_t r0, index_t rows, index_t p0, index_t kc, int R, index_t ss);

struct Bf16Kernel {
  UkrBf16Fn wide, narrow;          // the main tile and the one-vector tile (same height)
  UkrBf16Fn wide_stream;           // wide, storing whole vectors of C that start a line
                                   // around the caches (Epilogue::stream), or nullptr
  PackBf16Fn pack;                 // vectorized packing, or nullptr
  PackBf16Fn pack_panel;           // the same for a weight panel (bypassing the caches), or nullptr
  int mr, nr, narrow_mr, narrow_nr;
  index_t mc, kc, nc;              // cache blocks in elements of k (kc even)
  const char* name;                // "avx512_bf16", "generic"
  // Edge slivers of fewer rows (as GemmKernel::short_rows: the A sliver's
  // pairs read at stride mr).
  ShortRows<UkrBf16Fn> short_rows[kShortRows]{};
};

// The bf16 kernel for an edge sliver of mr rows packed at stride MR (the
// short kernels read pairs at stride K.mr, so only a K.mr-row sliver).
inline UkrBf16Fn edge_rows_kernel(const Bf16Kernel& K, bool narrow, index_t mr, int MR,
                                  UkrBf16Fn f) {
  return MR == K.mr ? shortest_rows(K.short_rows, narrow, mr, MR, f) : f;
}

inline GemmBlocking blocking_of(const Bf16Kernel& K) {
  GemmBlocking b;
  b.mr = K.mr;
  b.nr = K.nr;
  b.narrow_mr = K.narrow_mr;
  b.narrow_nr = K.narrow_nr;
  b.mc = K.mc;
  b.kc = K.kc;
  b.nc = K.nc;
  b.direct = false;  // the conversion to bf16 happens in packing: operands are always packed
  for (int i = 0; i < kShortRows; ++i) b.short_mr[i] = K.short_rows[i].mr;
  b.name = K.name;
  return b;
}

// The bf16 kernel chosen for this machine (dispatch.cpp).
const Bf16Kernel& active_bf16_kernel();

namespace generic {
extern const Bf16Kernel kBf16;
}  // namespace generic
#if defined(FASTMLP_HAVE_X86_KERNELS)
namespace avx512bf16 {
extern const Bf16Kernel kBf16;
}  // namespace avx512bf16
#endif

}  // namespace fastmlp
