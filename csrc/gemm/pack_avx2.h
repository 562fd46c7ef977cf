// Transposing pack of op(B) = B^T with 256-bit in-register transposes (8 x 8
// floats, 4 x 4 doubles): the forward product X W^T reads W this way, once
// per step, and a scalar transpose would cost about a tenth of the product at
// batch 128. A row-major A sliver packs the same way (dst[p*MR + i] =
// a[i*lda + p]), so the driver uses it for both. AVX2 instructions, so
// usable by the AVX2 and AVX-512 units.
//
// Include only from an ISA unit, inside its anonymous namespace (see
// ukr_simd.h).

// dst[p*NR + j] = src[j*ldb + p] for an 8 x 8 block of floats.
inline void transpose8x8(float* dst, index_t NR, const float* src, index_t ldb) {
  __m256 r0 = _mm256_loadu_ps(src + 0 * ldb), r1 = _mm256_loadu_ps(src + 1 * ldb);
  __m256 r2 = _mm256_loadu_ps(src + 2 * ldb), r3 = _mm256_loadu_ps(src + 3 * ldb);
  __m256 r4 = _mm256_loadu_ps(src + 4 * ldb), r5 = _mm256_loadu_ps(src + 5 * ldb);
  __m256 r6 = _mm256_loadu_ps(src + 6 * ldb), r7 = _mm256_loadu_ps(src + 7 * ldb);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst + 0 * NR, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(dst + 1 * NR, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(dst + 2 * NR, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(dst + 3 * NR, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(dst + 4 * NR, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(dst + 5 * NR, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(dst + 6 * NR, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(dst + 7 * NR, _mm256_permute2f128_ps(s3, s7, 0x31));
}

// dst[p*NR + j] = src[j*ldb + p] for a 4 x 4 block of doubles.
inline void transpose4x4(double* dst, index_t NR, const double* src, index_t ldb) {
  __m256d r0 = _mm256_loadu_pd(src + 0 * ldb), r1 = _mm256_loadu_pd(src + 1 * ldb);
  __m256d r2 = _mm256_loadu_pd(src + 2 * ldb), r3 = _mm256_loadu_pd(src + 3 * ldb);
  __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
  __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
  _mm256_storeu_pd(dst + 0 * NR, _mm256_permute2f128_pd(t0, t2, 0x20));
  _mm256_storeu_pd(dst + 1 * NR, _mm256_permute2f128_pd(t1, t3, 0x20));
  _mm256_storeu_pd(dst + 2 * NR, _mm256_permute2f128_pd(t0, t2, 0x31));
  _mm256_storeu_pd(dst + 3 * NR, _mm256_permute2f128_pd(t1, t3, 0x31));
}

inline void transpose_block(float* dst, index_t NR, const float* src, index_t ldb) {
  transpose8x8(dst, NR, src, ldb);
}
inline void transpose_block(double* dst, index_t NR, const double* src, index_t ldb) {
  transpose4x4(dst, NR, src, ldb);
}

template <class T>
void pack_bt_sliver(T* FM_RESTRICT dst, const T* b, index_t ldb, index_t p0, index_t kc,
                    index_t j0, index_t nr, int NR) {
  constexpr index_t S = 32 / sizeof(T);  // block side: 8 floats or 4 doubles
  const T* src = b + j0 * ldb + p0;
  const index_t jfull = nr / S * S, pfull = kc / S * S;
  for (index_t j = 0; j < jfull; j += S) {
    for (index_t p = 0; p < pfull; p += S)
      transpose_block(dst + p * NR + j, NR, src + j * ldb + p, ldb);
    for (index_t jj = j; jj < j + S; ++jj)
      for (index_t p = pfull; p < kc; ++p) dst[p * NR + jj] = src[jj * ldb + p];
  }
  for (index_t jj = jfull; jj < nr; ++jj)
    for (index_t p = 0; p < kc; ++p) dst[p * NR + jj] = src[jj * ldb + p];
  if (nr < NR)
    for (index_t p = 0; p < kc; ++p)
      for (index_t jj = nr; jj < NR; ++jj) dst[p * NR + jj] = T(0);
}
