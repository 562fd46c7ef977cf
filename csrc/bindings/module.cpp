// fastmlp._core: the compiled core. Python-facing checks live in
// python/fastmlp; this module only guards the core against mis-read arrays.
#include <pybind11/pybind11.h>

#include "common/parallel.h"
#include "gemm/gemm.h"

namespace py = pybind11;

namespace fastmlp::bind {
void bind_ops(py::module_& m);
void bind_networks(py::module_& m);
}  // namespace fastmlp::bind

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
  m.def("gemm_kernel", &fastmlp::gemm_kernel_name);
#if defined(__clang__)
  m.attr("compiler") = "clang " __clang_version__;
#elif defined(__GNUC__)
  m.attr("compiler") = "gcc " __VERSION__;
#elif defined(_MSC_VER)
  m.attr("compiler") = "msvc " FM_STR(_MSC_VER);
#else
  m.attr("compiler") = "unknown";
#endif
  fastmlp::bind::bind_ops(m);
  fastmlp::bind::bind_networks(m);
}
