// Optimizer bindings: the flat-buffer step of csrc/optim/optimizer.h for
// fm.ops and the tests (the config itself, _core.OptConfig, is bound in
// bind_types.cpp).
//
//   _core.optimizer_state_count(config) -> int
//   _core.optimizer_init_state(config, states)      states: list of (n,) arrays
//   _core.optimizer_step(config, p, g, states, step) p, states updated in place
//
// config is a _core.OptConfig (fastmlp.optim.<Optimizer>._core_config()).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/types.h"
#include "optim/optimizer.h"

namespace py = pybind11;

namespace fastmlp::bind {

using namespace pybind11::literals;

namespace {

constexpr int kMaxStates = 3;


std::string dtype_str(py::handle h) {
  return py::str(py::reinterpret_borrow<py::array>(h).dtype());
}

// h as a C-contiguous array of T, or TypeError/ValueError naming it.
template <class T>
carray<T> as_carray(py::handle h, const std::string& name, const char* dtype_of) {
  if (!py::isinstance<py::array>(h))
    throw py::type_error(name + ": expected a numpy array, got " + type_name(h));
  if (!py::isinstance<py::array_t<T>>(h))
    throw py::type_error(name + ": expected dtype " + dtype_name<T>() + dtype_of + ", got " +
                         dtype_str(h));
  if (!py::isinstance<carray<T>>(h))
    throw py::value_error(name + ": expected a C-contiguous array");
  return py::reinterpret_borrow<carray<T>>(h);
}

bool overlap(const void* a, const void* b, index_t bytes) {
  const char* x = static_cast<const char*>(a);
  const char* y = static_cast<const char*>(b);
  return bytes > 0 && x < y + bytes && y < x + bytes;
}

// The states list as `count` writable (n,) arrays of T, none overlapping
// another or `others` (the kernels read and write them as restrict pointers).
template <class T>
std::vector<T*> state_pointers(const py::list& states, int count, index_t n,
                               std::vector<std::pair<const void*, std::string>> others,
                               const char* dtype_of) {
  if (int(states.size()) != count)
    throw py::value_error("states: expected " + std::to_string(count) +
                          " arrays for this optimizer, got " + std::to_string(states.size()));
  std::vector<T*> ptrs;
  for (int s = 0; s < count; ++s) {
    const std::string name = "states[" + std::to_string(s) + "]";
    carray<T> a = as_carray<T>(states[s], name, dtype_of);
    T* ptr = require_mut<T>(a, name.c_str(), {n});
    for (const auto& [q, qname] : others)
      if (overlap(ptr, q, n * index_t(sizeof(T))))
        throw py::value_error(name + ": shares memory with " + qname +
                              "; every array needs its own buffer");
    others.emplace_back(ptr, name);
    ptrs.push_back(ptr);
  }
  return ptrs;
}

template <class T>
void step_typed(const OptConfig& cfg, py::handle p_obj, py::handle g_obj, const py::list& states,
                int64_t step) {
  carray<T> p = as_carray<T>(p_obj, "p", "");
  carray<T> g = as_carray<T>(g_obj, "g", " (the dtype of p)");
  T* pp = require_mut<T>(p, "p", {-1});
  const index_t n = p.shape(0);
  const T* gp = require<T>(g, "g", {n});
  if (overlap(pp, gp, n * index_t(sizeof(T))))
    throw py::value_error("g: shares memory with p; every array needs its own buffer");
  std::vector<T*> st = state_pointers<T>(states, optimizer_state_count(cfg), n,
                                         {{pp, "p"}, {gp, "g"}}, " (the dtype of p)");
  T* sp[kMaxStates] = {nullptr, nullptr, nullptr};
  for (size_t s = 0; s < st.size(); ++s) sp[s] = st[s];
  py::gil_scoped_release nogil;
  optimizer_step<T>(cfg, pp, gp, sp, n, step);
}

template <class T>
void init_typed(const OptConfig& cfg, const py::list& states, int count) {
  carray<T> first = as_carray<T>(states[0], "states[0]", "");
  require<T>(first, "states[0]", {-1});
  const index_t n = first.shape(0);
  std::vector<T*> st = state_pointers<T>(states, count, n, {}, " (the dtype of states[0])");
  T* sp[kMaxStates] = {nullptr, nullptr, nullptr};
  for (size_t s = 0; s < st.size(); ++s) sp[s] = st[s];
  py::gil_scoped_release nogil;
  optimizer_init_state<T>(cfg, sp, n);
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def(
      "optimizer_state_count",
      [](const OptConfig& config) { return optimizer_state_count(config); },
      "config"_a,
      "How many state buffers, each of the parameters' length, the optimizer needs.");

  m.def(
      "optimizer_init_state",
      [](const OptConfig& cfg, const py::list& states) {
        const int count = optimizer_state_count(cfg);
        if (count == 0 || states.size() == 0) {
          if (states.size() != size_t(count))
            throw py::value_error("states: expected " + std::to_string(count) +
                                  " arrays for this optimizer, got " +
                                  std::to_string(states.size()));
          return;
        }
        py::handle first = states[0];
        if (py::isinstance<py::array_t<float>>(first))
          init_typed<float>(cfg, states, count);
        else if (py::isinstance<py::array_t<double>>(first))
          init_typed<double>(cfg, states, count);
        else if (py::isinstance<py::array>(first))
          throw py::type_error("states[0]: expected dtype float32 or float64, got " +
                               dtype_str(first));
        else
          throw py::type_error("states[0]: expected a numpy array, got " + type_name(first));
      },
      "config"_a, "states"_a,
      "Fill the state buffers with their starting values (zeros; Adagrad's sum: "
      "initial_accumulator).");

  m.def(
      "optimizer_step",
      [](const OptConfig& cfg, py::object p, py::object g, const py::list& states,
         int64_t step) {
        if (step < 1)
          throw py::value_error("step: expected a 1-based step number >= 1, got " +
                                std::to_string(step));
        if (py::isinstance<py::array_t<float>>(p))
          step_typed<float>(cfg, p, g, states, step);
        else if (py::isinstance<py::array_t<double>>(p))
          step_typed<double>(cfg, p, g, states, step);
        else if (py::isinstance<py::array>(p))
          throw py::type_error("p: expected dtype float32 or float64, got " + dtype_str(p));
        else
          throw py::type_error("p: expected a numpy array, got " + type_name(p));
      },
      "config"_a, "p"_a, "g"_a, "states"_a, "step"_a,
      "One optimizer update of p (1-D, C-contiguous) from g, in place, with the state "
      "buffers updated too; step is this update's 1-based number.");
}

}  // namespace fastmlp::bind
