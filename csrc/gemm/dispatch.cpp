// Chooses the micro-kernels once per process from what the CPU and the OS
// support (cpuid + xgetbv, through the compiler's __builtin_cpu_supports),
// unless FASTMLP_ISA names one: generic, avx2 or avx512. Naming a path this
// machine cannot run is an error, reported when the module is imported.
// set_gemm_isa() switches paths at run time, so that the tests can check
// every supported path in one process.
//
// The bf16 kernel (gemm_bf16) follows the path: avx512 takes the AVX512-BF16
// kernel where cpuid reports AVX512_BF16, every other case the portable one.
// Two more FASTMLP_ISA values choose it explicitly: avx512_bf16 (the AVX-512
// paths with the AVX512-BF16 kernel, an error on a CPU without it) and
// generic_bf16 (the best float paths with the portable bf16 kernel, the
// explicit choice of the slow path on any CPU). Either way show_config()
// reports the float path as isa and the bf16 kernel as bf16_isa.
//
// Test hook: FASTMLP_HIDE_ISA=avx512 (or avx2, avx512_bf16, or "avx2,avx512") makes this
// process believe the CPU lacks that instruction set, so that the refusal of
// an unsupported FASTMLP_ISA can be tested on any machine. Hiding avx2 hides
// avx512 too (the AVX-512 path also runs AVX2 instructions), and hiding
// avx512 hides avx512_bf16. Read once, at
// the first query; an unknown name fails the import like a bad FASTMLP_ISA.
#include <algorithm>
#if defined(FASTMLP_HAVE_X86_KERNELS)
#include <cpuid.h>
#endif
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "gemm/gemm.h"
#include "gemm/ukr.h"

namespace fastmlp {
namespace {

struct KernelPair {
  const GemmKernel<float>* s;
  const GemmKernel<double>* d;
};

std::atomic<const GemmKernel<float>*> g_sgemm{nullptr};
std::atomic<const GemmKernel<double>*> g_dgemm{nullptr};
std::atomic<const Bf16Kernel*> g_bf16{nullptr};

struct Hidden {
  bool avx2 = false, avx512 = false, avx512_bf16 = false;
  std::string error;  // non-empty: FASTMLP_HIDE_ISA names something else
};

Hidden read_hidden() {
  Hidden h;
  const char* env = std::getenv("FASTMLP_HIDE_ISA");
  const std::string v = env ? env : "";
  std::size_t pos = 0;
  while (pos <= v.size() && !v.empty()) {
    const std::size_t end = std::min(v.find(',', pos), v.size());
    const std::string name = v.substr(pos, end - pos);
    if (name == "avx2") {
      h.avx2 = h.avx512 = h.avx512_bf16 = true;
    } else if (name == "avx512") {
      h.avx512 = h.avx512_bf16 = true;
    } else if (name == "avx512_bf16") {
      h.avx512_bf16 = true;
    } else {
      h.error = "FASTMLP_HIDE_ISA: expected a comma-separated list of avx2, avx512, avx512_bf16, got '" + v + "'";
      break;
    }
    pos = end + 1;
  }
  return h;
}

const Hidden& hidden() {
  static const Hidden h = read_hidden();
  return h;
}

bool cpu_has(const std::string& isa) {
  if (isa == "generic") return true;
#if defined(FASTMLP_HAVE_X86_KERNELS)
  __builtin_cpu_init();
  if (isa == "avx2")
    return !hidden().avx2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx512")
    return !hidden().avx512 && __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (isa == "avx512_bf16") {
    // AVX512_BF16 is cpuid leaf 7, subleaf 1, EAX bit 5. The OS check (XCR0
    // enables the opmask and zmm state) is the one behind avx512f above.
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    const bool leaf = __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) != 0;
    // Its packing also uses AVX512BW (every CPU with AVX512_BF16 has it).
    return !hidden().avx512_bf16 && leaf && (eax & (1u << 5)) != 0 && cpu_has("avx512") &&
           __builtin_cpu_supports("avx512bw");
  }
#endif
  return false;
}

KernelPair kernels_for(const std::string& isa) {
#if defined(FASTMLP_HAVE_X86_KERNELS)
  if (isa == "avx512") return {&avx512::kSgemm, &avx512::kDgemm};
  if (isa == "avx2") return {&avx2::kSgemm, &avx2::kDgemm};
#endif
  (void)isa;
  return {&generic::kSgemm, &generic::kDgemm};
}

const char* const kKnown[] = {"generic", "avx2", "avx512"};  // float paths
const char* const kKnownValues =
    "generic, avx2, avx512, avx512_bf16, generic_bf16";  // FASTMLP_ISA

const Bf16Kernel* bf16_kernel_for(const std::string& isa) {
#if defined(FASTMLP_HAVE_X86_KERNELS)
  if (isa == "avx512_bf16") return &avx512bf16::kBf16;
#endif
  (void)isa;
  return &generic::kBf16;
}

constexpr bool compiled_x86() {
#if defined(FASTMLP_HAVE_X86_KERNELS)
  return true;
#else
  return false;
#endif
}

// Float path `isa` with bf16 kernel `bf16` ("" = the path's own: see the header).
void install(const std::string& isa, std::string bf16 = "") {
  if (bf16.empty()) bf16 = isa == "avx512" && cpu_has("avx512_bf16") ? "avx512_bf16" : "generic";
  KernelPair k = kernels_for(isa);
  // g_sgemm last: once it is set, ensure_selected() considers everything set.
  g_bf16.store(bf16_kernel_for(bf16), std::memory_order_release);
  g_dgemm.store(k.d, std::memory_order_release);
  g_sgemm.store(k.s, std::memory_order_release);
}

void ensure_selected() {
  if (g_sgemm.load(std::memory_order_acquire)) return;
  if (!hidden().error.empty()) throw std::invalid_argument(hidden().error);
  const char* env = std::getenv("FASTMLP_ISA");
  if (env && *env) {
    set_gemm_isa(env);
    return;
  }
  install(best_gemm_isa());
}

}  // namespace

std::vector<std::string> supported_gemm_isas() {
  std::vector<std::string> out;
  for (const char* isa : kKnown)
    if (cpu_has(isa)) out.push_back(isa);
  return out;
}

std::string best_gemm_isa() {
  if (cpu_has("avx512")) return "avx512";
  if (cpu_has("avx2")) return "avx2";
  return "generic";
}

void set_gemm_isa(const std::string& isa) {
  if (isa == "generic_bf16") {
    install(best_gemm_isa(), "generic");
    return;
  }
  if (isa == "avx512_bf16") {
    if (!cpu_has("avx512_bf16")) {
#if defined(FASTMLP_HAVE_X86_KERNELS)
      throw std::invalid_argument(
          std::string("FASTMLP_ISA: this CPU (or OS) does not support avx512_bf16 (the "
                      "AVX512-BF16 instructions, cpuid leaf 7.1 EAX bit 5, with AVX-512)") +
          (hidden().avx512_bf16 ? " (FASTMLP_HIDE_ISA hides it)" : "") +
          "; generic_bf16 forces the portable bf16 kernel");
#else
      throw std::invalid_argument(
          "FASTMLP_ISA: avx512_bf16 kernels are not part of this build (not an x86-64 build)");
#endif
    }
    install("avx512", "avx512_bf16");
    return;
  }
  bool known = false;
  for (const char* k : kKnown) known = known || isa == k;
  if (!known)
    throw std::invalid_argument(std::string("FASTMLP_ISA: expected one of ") + kKnownValues +
                                ", got '" + isa + "'");
  if (!cpu_has(isa)) {
#if defined(FASTMLP_HAVE_X86_KERNELS)
    const bool hid = isa == "avx512" ? hidden().avx512 : hidden().avx2;
    throw std::invalid_argument("FASTMLP_ISA: this CPU (or OS) does not support " + isa +
                                (hid ? " (FASTMLP_HIDE_ISA hides it)" : "") +
                                "; supported here: " + best_gemm_isa() + " and below");
#else
    throw std::invalid_argument("FASTMLP_ISA: " + isa +
                                " kernels are not part of this build (not an x86-64 build)");
#endif
  }
  install(isa);
}

void init_gemm_dispatch() { ensure_selected(); }

GemmBlocking gemm_blocking(const std::string& isa, bool dbl) {
#if defined(FASTMLP_HAVE_X86_KERNELS)
  const bool compiled = isa == "generic" || isa == "avx2" || isa == "avx512";
#else
  const bool compiled = isa == "generic";
#endif
  if (!compiled)
    throw std::invalid_argument("isa: expected one of the paths of this build (generic" +
                                std::string(compiled_x86() ? ", avx2, avx512" : "") + "), got '" +
                                isa + "'");
  const KernelPair k = kernels_for(isa);
  return dbl ? blocking_of(*k.d) : blocking_of(*k.s);
}

template <>
const GemmKernel<float>& active_gemm_kernel<float>() {
  const GemmKernel<float>* k = g_sgemm.load(std::memory_order_acquire);
  if (!k) {
    ensure_selected();
    k = g_sgemm.load(std::memory_order_acquire);
  }
  return *k;
}
template <>
const GemmKernel<double>& active_gemm_kernel<double>() {
  const GemmKernel<double>* k = g_dgemm.load(std::memory_order_acquire);
  if (!k) {
    ensure_selected();
    k = g_dgemm.load(std::memory_order_acquire);
  }
  return *k;
}

const char* gemm_kernel_name() { return active_gemm_kernel<float>().name; }

const Bf16Kernel& active_bf16_kernel() {
  const Bf16Kernel* k = g_bf16.load(std::memory_order_acquire);
  if (!k) {
    ensure_selected();
    k = g_bf16.load(std::memory_order_acquire);
  }
  return *k;
}

const char* bf16_kernel_name() { return active_bf16_kernel().name; }

bool cpu_has_bf16() { return cpu_has("avx512_bf16"); }

std::vector<std::string> supported_bf16_isas() {
  std::vector<std::string> out{"generic"};
  if (cpu_has("avx512_bf16")) out.push_back("avx512_bf16");
  return out;
}

GemmBlocking gemm_blocking_bf16(const std::string& isa) {
  const bool compiled = isa == "generic" || (compiled_x86() && isa == "avx512_bf16");
  if (!compiled)
    throw std::invalid_argument("isa: expected one of the bf16 kernels of this build (generic" +
                                std::string(compiled_x86() ? ", avx512_bf16" : "") + "), got '" +
                                isa + "'");
  return blocking_of(*bf16_kernel_for(isa));
}

}  // namespace fastmlp
