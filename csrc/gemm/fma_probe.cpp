// The machine's measured multiply-add throughput, the yardstick for the
// GEMM's "fraction of peak": each of `threads` threads runs independent FMA
// chains of the chosen path for a while, and the flops over the wall time of
// the whole team are reported. Nominal peaks (cores x GHz x lanes x ports)
// are often not what a core sustains (AVX-512 frequency offsets, 256-bit
// halves on some cores), so the benchmarks use this number instead.
#include <chrono>
#include <stdexcept>
#include <string>

#include "common/parallel.h"
#include "gemm/gemm.h"
#include "gemm/ukr.h"

namespace fastmlp {
namespace {

// The portable path: 16 independent multiply-add chains the compiler may
// vectorize at the baseline ISA (without FMA: a multiply and an add, 2 flops).
template <class T>
T generic_chains(long long iters) {
  T acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = T(0.5) + T(i);
  const T m = T(1), d = T(1e-7);
  for (long long it = 0; it < iters; ++it)
    for (int i = 0; i < 16; ++i) acc[i] = acc[i] * m + d;
  T s = 0;
  for (int i = 0; i < 16; ++i) s += acc[i];
  return s;
}

volatile double g_sink;

double run_probe(const std::string& isa, bool dbl, long long iters) {
  double flops = 0.0;
#if defined(FASTMLP_HAVE_X86_KERNELS)
  if (isa == "avx512") {
    g_sink = avx512::fma_probe(dbl, iters, &flops);
    return flops;
  }
  if (isa == "avx2") {
    g_sink = avx2::fma_probe(dbl, iters, &flops);
    return flops;
  }
#endif
  g_sink = dbl ? generic_chains<double>(iters) : double(generic_chains<float>(iters));
  return double(iters) * 16 * 2;
}

}  // namespace

double fma_peak_gflops(const std::string& isa, bool dbl, int threads, double seconds) {
  bool ok = false;
  for (const std::string& s : supported_gemm_isas()) ok = ok || s == isa;
  if (!ok) throw std::invalid_argument("isa: '" + isa + "' is not supported on this machine");
  if (threads < 1) threads = 1;
  using clock = std::chrono::steady_clock;
  // Calibrate on one thread: grow the round count until it takes ~20 ms.
  long long iters = 1 << 16;
  for (;;) {
    auto t0 = clock::now();
    run_probe(isa, dbl, iters);
    double dt = std::chrono::duration<double>(clock::now() - t0).count();
    if (dt > 0.02) {
      iters = (long long)(double(iters) * (seconds / dt));
      if (iters < 1) iters = 1;
      break;
    }
    iters *= 4;
  }
  double total = 0.0;
  auto t0 = clock::now();
#if defined(_OPENMP)
#pragma omp parallel num_threads(threads) reduction(+ : total)
#endif
  { total += run_probe(isa, dbl, iters); }
  double dt = std::chrono::duration<double>(clock::now() - t0).count();
  return total / dt / 1e9;
}

}  // namespace fastmlp
