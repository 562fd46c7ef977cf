#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace fastmlp::bind {

void bind_nn(py::module_& m) { (void)m; }

}  // namespace fastmlp::bind
