// The named types shared by the bindings (bind_types.cpp binds them): the
// kinds as py::enum_, LayerSpec, OptConfig, StepResult, EpochResult.
#pragma once

#include <pybind11/pybind11.h>

#include <string>

#include "common/types.h"
#include "network/trainer.h"

namespace fastmlp::bind {

namespace py = pybind11;

// Layer l of an n-layer network, or IndexError with the one message every
// binding uses.
inline index_t check_layer(index_t l, index_t n) {
  if (l < 0 || l >= n)
    throw py::index_error("layer: expected an index in [0, " + std::to_string(n) + "), got " +
                          std::to_string(l));
  return l;
}

// The Python type name of h, for messages.
inline std::string type_name(py::handle h) {
  return py::str(py::type::handle_of(h).attr("__name__"));
}

// A step's result as Python sees it: _core.StepResult (loss, ok, bad_layer).
py::object to_python(const StepResult& r);

void bind_types(py::module_& m);

}  // namespace fastmlp::bind
