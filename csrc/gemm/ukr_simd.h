// The register-blocked micro-kernel, written once over a small vector-traits
// type V and instantiated by each ISA translation unit (ukr_avx2.cpp,
// ukr_avx512.cpp) with that unit's compiler flags.
//
// Include this header only from an ISA unit, inside its anonymous namespace:
// everything here must be private to the unit, or the linker could pick a
// copy compiled for a wider ISA than the machine has. For the same reason the
// code below uses no standard-library templates.
//
// V provides: T (element), R (register), W (lanes), zero(), load(p),
// bcast(p), fma(a, b, acc) = a*b + acc, mul(a, b), store(p, r),
// load_n(p, n) / store_n(p, r, n) for the first n < W lanes.
//
// Tile: MR rows x NR = NV*W columns of C, MR*NV accumulators. Per k step it
// loads NV vectors of B, broadcasts MR elements of A and issues MR*NV FMAs.
// The sum over k runs in increasing k for every element (the determinism
// rule of gemm.h).

// ROWS: A is row-major (A(i, p) = a[i*lda + p]); otherwise k-major
// (A(i, p) = a[p*lda + i]). Row-major A is read through MR/3 row pointers,
// each serving three rows at offsets 0, lda and 2*lda, which x86 addressing
// expresses without extra registers.
template <class V, int MR, int NV, bool ROWS, bool Stream = false>
void ukr_simd(index_t kc, const typename V::T* FM_RESTRICT a, index_t lda,
              const typename V::T* FM_RESTRICT b, index_t ldb, typename V::T* FM_RESTRICT c,
              index_t ldc, index_t m, index_t n, typename V::T alpha, typename V::T beta) {
  static_assert(!ROWS || MR % 3 == 0, "row-major A is read three rows per pointer");
  using T = typename V::T;
  using R = typename V::R;
  constexpr int W = V::W;
  constexpr int NR = NV * W;
  constexpr int NG = ROWS ? MR / 3 : 1;
  R acc[MR][NV];
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[i][j] = V::zero();

  const T* rows[NG];
#pragma GCC unroll 8
  for (int g = 0; g < NG; ++g) rows[g] = a + (ROWS ? 3 * g * lda : 0);

  for (index_t p = 0; p < kc; ++p) {
    R bv[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) bv[j] = V::load(b + j * W);
    if (!ROWS) __builtin_prefetch(rows[0] + 8 * lda);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      const R ai = ROWS ? V::bcast(rows[i / 3] + (i % 3) * lda) : V::bcast(rows[0] + i);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::fma(ai, bv[j], acc[i][j]);
    }
    if (ROWS) {
#pragma GCC unroll 8
      for (int g = 0; g < NG; ++g) rows[g] += 1;
    } else {
      rows[0] += lda;
    }
    b += ldb;
  }

  if (alpha != T(1)) {
    const R va = V::bcast(&alpha);
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[i][j] = V::mul(acc[i][j], va);
  }
  const R vb = V::bcast(&beta);
  if (m == MR && n == NR) {
    if constexpr (Stream) {
      // Whole rows that start a cache line go around the caches (GemmKernel::
      // wide_stream; V::stream needs a vector-aligned address); beta == 0 only.
      if (beta == T(0)) {
#pragma GCC unroll 32
        for (int i = 0; i < MR; ++i) {
          T* ci = c + i * ldc;
          const bool line = starts_line(ci);
#pragma GCC unroll 8
          for (int j = 0; j < NV; ++j) {
            if (line)
              V::stream(ci + j * W, acc[i][j]);
            else
              V::store(ci + j * W, acc[i][j]);
          }
        }
        _mm_sfence();  // streamed rows ordered before the caller's next stores
        return;
      }
    }
#pragma GCC unroll 32
    for (int i = 0; i < MR; ++i) {
      T* ci = c + i * ldc;
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        R r = acc[i][j];
        if (beta == T(1))
          r = V::add(r, V::load(ci + j * W));
        else if (beta != T(0))
          r = V::fma(vb, V::load(ci + j * W), r);
        V::store(ci + j * W, r);
      }
    }
    return;
  }
  // Edge tile: rows beyond m are skipped, columns beyond n masked.
#pragma GCC unroll 32
  for (int i = 0; i < MR; ++i) {
    if (i >= m) break;
    T* ci = c + i * ldc;
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) {
      const index_t left = n - index_t(j) * W;
      if (left <= 0) break;
      R r = acc[i][j];
      if (left >= W) {
        if (beta == T(1))
          r = V::add(r, V::load(ci + j * W));
        else if (beta != T(0))
          r = V::fma(vb, V::load(ci + j * W), r);
        V::store(ci + j * W, r);
      } else {
        const int cnt = int(left);
        if (beta == T(1))
          r = V::add(r, V::load_n(ci + j * W, cnt));
        else if (beta != T(0))
          r = V::fma(vb, V::load_n(ci + j * W, cnt), r);
        V::store_n(ci + j * W, r, cnt);
      }
    }
  }
}

// Sustained FMA throughput probe: `iters` rounds of NACC independent FMA
// chains (enough to cover latency x ports on current cores). Returns a value
// that depends on every chain so the compiler cannot drop the work. Flops
// done: iters * NACC * 2 * W.
template <class V, int NACC>
typename V::T fma_chains(long long iters) {
  using T = typename V::T;
  using R = typename V::R;
  T one = T(1), tiny = T(1e-7), x0 = T(0.5);
  const R m = V::bcast(&one);
  const R d = V::bcast(&tiny);
  R acc[NACC];
#pragma GCC unroll 32
  for (int i = 0; i < NACC; ++i) acc[i] = V::bcast(&x0);
  for (long long it = 0; it < iters; ++it) {
#pragma GCC unroll 32
    for (int i = 0; i < NACC; ++i) acc[i] = V::fma(acc[i], m, d);
    // Keep the chains in registers: an empty asm that "reads and writes" them.
#pragma GCC unroll 32
    for (int i = 0; i < NACC; ++i) __asm__ volatile("" : "+v"(acc[i]));
  }
  R s = acc[0];
#pragma GCC unroll 32
  for (int i = 1; i < NACC; ++i) s = V::add(s, acc[i]);
  T out[V::W];
  V::store(out, s);
  return out[0];
}

// tanh and sigmoid at this unit's width (the static float helpers of
// nn/activations.h, compiled here). Only those two: the callers send no other.
// A length that is not a multiple of 16 ends in a padded 16-element buffer,
// so that every element goes through the vector loop (the compiler's own tail
// runs the functions one element at a time, with scalar divisions).
inline void act_block_f32(float* y, const float* z, index_t len, Act act) {
  if (act == Act::tanh)
    for (index_t i = 0; i < len; ++i) y[i] = tanh_f32(z[i]);
  else
    for (index_t i = 0; i < len; ++i) y[i] = sigmoid_f32(z[i]);
}

inline void act_run_f32(float* y, const float* z, index_t len, Act act) {
  constexpr index_t kBlock = 16;
  const index_t body = len / kBlock * kBlock;
  for (index_t i = 0; i < body; i += kBlock) act_block_f32(y + i, z + i, kBlock, act);
  if (body < len) {
    alignas(64) float buf[kBlock] = {};
    const index_t rest = len - body;
    for (index_t i = 0; i < rest; ++i) buf[i] = z[body + i];
    act_block_f32(buf, buf, kBlock, act);
    for (index_t i = 0; i < rest; ++i) y[body + i] = buf[i];
  }
}

// dz = dy * act'(z) for tanh and sigmoid at this unit's width, as
// act_run_f32 (same padded tail), in either type (nn/activations.h exp_neg
// vectorizes here at the unit's width, with its FMAs). dz may equal dy: each
// element is read before it is written, at the same index, so the loop has
// no carried dependence (hence omp simd).
template <class T>
inline void act_back_block(T* dz, const T* dy, const T* z, index_t len, Act act) {
  if (act == Act::tanh) {
#pragma omp simd
    for (index_t i = 0; i < len; ++i) dz[i] = dy[i] * tanh_deriv_scalar(z[i]);
  } else {
#pragma omp simd
    for (index_t i = 0; i < len; ++i) dz[i] = dy[i] * sigmoid_deriv_scalar(z[i]);
  }
}

template <class T>
inline void act_back_run(T* dz, const T* dy, const T* z, index_t len, Act act) {
  constexpr index_t kBlock = 16;
  const index_t body = len / kBlock * kBlock;
  for (index_t i = 0; i < body; i += kBlock) act_back_block(dz + i, dy + i, z + i, kBlock, act);
  if (body < len) {
    alignas(64) T bz[kBlock] = {}, bd[kBlock] = {};
    const index_t rest = len - body;
    for (index_t i = 0; i < rest; ++i) {
      bz[i] = z[body + i];
      bd[i] = dy[body + i];
    }
    act_back_block(bd, bd, bz, kBlock, act);
    for (index_t i = 0; i < rest; ++i) dz[body + i] = bd[i];
  }
}

// The k-major and row-major kernels of one tile shape (Stream: the variants
// that store whole lines of C around the caches when beta == 0; they need V::stream).
template <class V, int MR, int NV, bool Stream = false>
constexpr Ukr<typename V::T> ukr_pair() {
  return {&ukr_simd<V, MR, NV, false, Stream>, &ukr_simd<V, MR, NV, true, Stream>, MR, NV * V::W};
}

// The ShortRows entry of MR rows (k-major A only: edge slivers are always
// packed) for a unit whose wide tile is NV vectors wide and narrow tile NVN.
template <class V, int MR, int NV, int NVN>
constexpr ShortRows<UkrFn<typename V::T>> short_rows() {
  return {MR, &ukr_simd<V, MR, NV, false>, &ukr_simd<V, MR, NVN, false>};
}

// The unit's fma_probe (see ukr.h) with NACC chains of F32 or F64 registers.
template <class F32, class F64, int NACC>
double fma_probe_with(bool dbl, long long iters, double* flops) {
  if (dbl) {
    *flops = double(iters) * NACC * 2 * F64::W;
    return fma_chains<F64, NACC>(iters);
  }
  *flops = double(iters) * NACC * 2 * F32::W;
  return fma_chains<F32, NACC>(iters);
}
