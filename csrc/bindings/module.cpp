// fastmlp._core: the compiled core. Python-facing checks live in
// python/fastmlp; this module only guards the core against mis-read arrays.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "common/parallel.h"
#include "gemm/gemm.h"

namespace py = pybind11;

namespace fastmlp::bind {
void bind_ops(py::module_& m);
void bind_networks(py::module_& m);
void bind_optim(py::module_& m);
void bind_nn(py::module_& m);
void bind_types(py::module_& m);
}  // namespace fastmlp::bind

// The thread setting as plain C symbols, for threadpoolctl (fastmlp/_threadpool.py
// registers a controller that finds this library by them): threadpool_limits()
// and joblib's workers then limit fastmlp as they limit BLAS and OpenMP.
#if defined(_WIN32)
#define FM_C_EXPORT extern "C" __declspec(dllexport)
#else
#define FM_C_EXPORT extern "C" __attribute__((visibility("default")))
#endif
FM_C_EXPORT int fastmlp_get_num_threads() { return fastmlp::num_threads(); }
FM_C_EXPORT void fastmlp_set_num_threads(int n) { fastmlp::set_num_threads(n < 1 ? 1 : n); }

#ifndef FASTMLP_VERSION
#define FASTMLP_VERSION "0.0.0"
#endif
#define FM_STR2(x) #x
#define FM_STR(x) FM_STR2(x)

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastmlp compiled core";
  m.attr("__version__") = FASTMLP_VERSION;
  m.def("set_num_threads", [](int n) {
    if (n < 1) throw py::value_error("n: expected a positive number of threads, got " + std::to_string(n));
    fastmlp::set_num_threads(n);
  }, py::arg("n"));
  m.def("get_num_threads", &fastmlp::num_threads);
  m.def("have_openmp", &fastmlp::have_openmp);
  m.def("_threads_probe_reset", &fastmlp::threads_probe_reset,
        "Testing aid: forget the teams seen so far (see _threads_probe).");
  m.def("_threads_probe", &fastmlp::threads_probe,
        "Testing aid: the largest thread team that ran a parallel region of the core since "
        "the last _threads_probe_reset() (0 if every region ran on the calling thread).");
  m.def("gemm_kernel", &fastmlp::gemm_kernel_name);
  m.def("supported_isas", &fastmlp::supported_gemm_isas);
  m.def("bf16_kernel", &fastmlp::bf16_kernel_name);
  m.def("supported_bf16_isas", &fastmlp::supported_bf16_isas);
  m.def("have_bf16_instructions", &fastmlp::cpu_has_bf16);
  m.def("set_isa", [](const std::string& isa) {
    try {
      fastmlp::set_gemm_isa(isa);
    } catch (const std::invalid_argument& e) {
      // The same message, naming the argument of this call.
      std::string msg = e.what();
      if (msg.rfind("FASTMLP_ISA: ", 0) == 0) msg = "isa: " + msg.substr(13);
      throw py::value_error(msg);
    }
  }, py::arg("isa"));
  m.def("fma_peak", [](const std::string& isa, bool dbl, int threads, double seconds) {
    py::gil_scoped_release nogil;
    return fastmlp::fma_peak_gflops(isa, dbl, threads, seconds);
  }, py::arg("isa"), py::arg("double"), py::arg("threads"), py::arg("seconds"));
#if defined(__clang__)
  m.attr("compiler") = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.attr("compiler") = "gcc " __VERSION__;
#elif defined(_MSC_VER)
  m.attr("compiler") = "msvc " FM_STR(_MSC_VER);
#else
  m.attr("compiler") = "unknown";
#endif
  // Apply FASTMLP_ISA (or pick the best path) now, so that a bad value fails
  // the import with its message instead of surfacing in the first product.
  fastmlp::init_gemm_dispatch();
  fastmlp::bind::bind_types(m);
  fastmlp::bind::bind_ops(m);
  fastmlp::bind::bind_networks(m);
  fastmlp::bind::bind_optim(m);
  fastmlp::bind::bind_nn(m);
}
