// Thin OpenMP layer: the thread count fastmlp uses, and helpers that compile
// to serial code when the compiler has no OpenMP.
//
// fastmlp keeps its own thread count instead of calling omp_set_num_threads,
// so that set_num_threads() changes fastmlp only, not other OpenMP code in the
// same process. Every parallel region passes it in num_threads().
#pragma once

#include <atomic>

#include "common/types.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fastmlp {

int num_threads();          // threads a parallel region may use (>= 1)
void set_num_threads(int);  // n >= 1; validated by the caller
bool have_openmp();

// Thread-count probe, a testing aid: the largest team that has run a parallel
// region since the last reset (0: none ran; a region that the work size sends
// to the calling thread alone records nothing). Tests use it to prove that a
// "1 vs 2 threads" comparison really ran on two threads. Each thread of a
// region calls note_team() once: one relaxed load of a shared counter, and a
// store only the first time a larger team is seen, so it costs nothing next to
// the region itself (opening a team takes microseconds).
inline std::atomic<int> threads_probe_largest{0};
inline void note_team(int team) {
  std::atomic<int>& slot = threads_probe_largest;
  int seen = slot.load(std::memory_order_relaxed);
  while (seen < team &&
         !slot.compare_exchange_weak(seen, team, std::memory_order_relaxed)) {
  }
}
int threads_probe();        // largest team since the last reset
void threads_probe_reset();

inline int thread_id() {
#if defined(_OPENMP)
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int team_size() {
#if defined(_OPENMP)
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// for (i = 0; i < n; ++i) body(i) on nt threads, static schedule, or as a
// plain loop when nt <= 1. Never write `#pragma omp parallel ... if (nt > 1)`
// instead: libgomp opens a team even for a false `if` (a heap allocation and
// futex calls each time), which cost more than the small loops of a 64-32-10
// network's whole training step.
template <class F>
inline void parallel_for(index_t n, int nt, F&& body) {
#if defined(_OPENMP)
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      note_team(omp_get_num_threads());
#pragma omp for schedule(static)
      for (index_t i = 0; i < n; ++i) body(i);
    }
    return;
  }
#else
  (void)nt;
#endif
  for (index_t i = 0; i < n; ++i) body(i);
}

// The same for element-wise bodies that should be vectorized on either path.
template <class F>
inline void parallel_for_simd(index_t n, int nt, F&& body) {
#if defined(_OPENMP)
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      note_team(omp_get_num_threads());
#pragma omp for simd schedule(static)
      for (index_t i = 0; i < n; ++i) body(i);
    }
    return;
  }
#else
  (void)nt;
#endif
#pragma omp simd
  for (index_t i = 0; i < n; ++i) body(i);
}

// Threads worth using for `work` multiply-adds: a parallel region costs a few
// microseconds to open, so small problems run on the calling thread. The
// answer never changes a result, only its speed (see the determinism rule in
// gemm.h: work is split over output tiles, never over a reduction).
// threads_for_count: the same rule for `nt` available threads (a pure
// function, for plans that are computed for a given thread count).
inline int threads_for_count(double work, int nt, double min_work_per_thread = 262144.0) {
  if (nt <= 1) return 1;
  double by_work = work / min_work_per_thread;
  if (by_work < 2.0) return 1;
  return by_work < nt ? static_cast<int>(by_work) : nt;
}
inline int threads_for(double work, double min_work_per_thread = 262144.0) {
  return threads_for_count(work, num_threads(), min_work_per_thread);
}

}  // namespace fastmlp
