#include "common/parallel.h"

#include <atomic>

namespace fastmlp {

namespace {
int initial_threads() {
#if defined(_OPENMP)
  int n = omp_get_max_threads();
  return n > 0 ? n : 1;
#else
  return 1;
#endif
}
std::atomic<int>& thread_setting() {
  static std::atomic<int> n{initial_threads()};
  return n;
}
}  // namespace

int num_threads() { return thread_setting().load(std::memory_order_relaxed); }

void set_num_threads(int n) { thread_setting().store(n < 1 ? 1 : n, std::memory_order_relaxed); }

int threads_probe() { return threads_probe_largest.load(std::memory_order_relaxed); }

void threads_probe_reset() { threads_probe_largest.store(0, std::memory_order_relaxed); }

bool have_openmp() {
#if defined(_OPENMP)
  return true;
#else
  return false;
#endif
}

}  // namespace fastmlp
