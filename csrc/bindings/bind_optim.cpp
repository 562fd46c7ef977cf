// Optimizer bindings: the dict <-> OptConfig conversion used by every part of
// the module that takes an optimizer (opt_config.h), and the flat-buffer step
// of csrc/optim/optimizer.h for fm.ops and the tests.
//
//   _core.optimizer_state_count(config) -> int
//   _core.optimizer_init_state(config, states)      states: list of (n,) arrays
//   _core.optimizer_step(config, p, g, states, step) p, states updated in place
//
// config is fastmlp.optim.<Optimizer>._core_config(): {"kind": int, field: value}.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/opt_config.h"
#include "optim/optimizer.h"

namespace py = pybind11;

namespace fastmlp::bind {

using namespace pybind11::literals;

namespace {

constexpr int kMaxStates = 3;

const char* const kDoubleFields[] = {"lr",   "weight_decay", "momentum", "dampening",
                                     "beta1", "beta2",       "eps",      "alpha",
                                     "lr_decay", "initial_accumulator"};
const char* const kBoolFields[] = {"nesterov", "amsgrad", "centered"};

double* double_field(OptConfig& c, const std::string& k) {
  if (k == "lr") return &c.lr;
  if (k == "weight_decay") return &c.weight_decay;
  if (k == "momentum") return &c.momentum;
  if (k == "dampening") return &c.dampening;
  if (k == "beta1") return &c.beta1;
  if (k == "beta2") return &c.beta2;
  if (k == "eps") return &c.eps;
  if (k == "alpha") return &c.alpha;
  if (k == "lr_decay") return &c.lr_decay;
  if (k == "initial_accumulator") return &c.initial_accumulator;
  return nullptr;
}

bool* bool_field(OptConfig& c, const std::string& k) {
  if (k == "nesterov") return &c.nesterov;
  if (k == "amsgrad") return &c.amsgrad;
  if (k == "centered") return &c.centered;
  return nullptr;
}

std::string known_keys() {
  std::string s = "kind";
  for (const char* k : kDoubleFields) s += std::string(", ") + k;
  for (const char* k : kBoolFields) s += std::string(", ") + k;
  return s;
}

std::string type_name(py::handle h) { return py::str(py::type::handle_of(h).attr("__name__")); }

std::string dtype_str(py::handle h) {
  return py::str(py::reinterpret_borrow<py::array>(h).dtype());
}

// A real number: Python or NumPy int/float, never bool (True is not a rate).
bool is_number(py::handle h) {
  PyObject* o = h.ptr();
  if (PyBool_Check(o) || py::isinstance(h, py::module_::import("numpy").attr("bool_")))
    return false;
  if (PyFloat_Check(o) || PyLong_Check(o) || PyIndex_Check(o)) return true;
  PyNumberMethods* nb = Py_TYPE(o)->tp_as_number;
  return nb != nullptr && nb->nb_float != nullptr;
}

bool is_bool(py::handle h) {
  return PyBool_Check(h.ptr()) || py::isinstance(h, py::module_::import("numpy").attr("bool_"));
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

OptConfig opt_config_from_dict(const py::dict& d) {
  OptConfig c;
  bool have_kind = false;
  for (auto item : d) {
    if (!py::isinstance<py::str>(item.first))
      throw py::type_error("config: keys must be strings, got " + type_name(item.first));
    const std::string key = py::cast<std::string>(item.first);
    py::handle v = item.second;
    if (key == "kind") {
      if (PyBool_Check(v.ptr()) || !PyIndex_Check(v.ptr()))
        throw py::type_error("kind: expected an integer optimizer id, got " + type_name(v));
      const long long k = py::cast<long long>(py::reinterpret_borrow<py::object>(v));
      if (k < 0 || k >= kNumOptKinds)
        throw py::value_error("kind: expected an optimizer id in [0, " +
                              std::to_string(kNumOptKinds) + "), got " + std::to_string(k));
      c.kind = OptKind(int(k));
      have_kind = true;
    } else if (double* f = double_field(c, key)) {
      if (!is_number(v))
        throw py::type_error(key + ": expected a number, got " + type_name(v));
      *f = py::cast<double>(py::reinterpret_borrow<py::object>(v));
    } else if (bool* b = bool_field(c, key)) {
      if (!is_bool(v)) throw py::type_error(key + ": expected a bool, got " + type_name(v));
      *b = py::cast<bool>(py::reinterpret_borrow<py::object>(v));
    } else {
      throw py::value_error("config: unknown key '" + key + "' (expected " + known_keys() + ")");
    }
  }
  if (!have_kind) throw py::value_error("config: missing key 'kind' (the optimizer id)");
  try {
    validate(c);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  return c;
}

py::dict opt_config_to_dict(const OptConfig& c) {
  py::dict d;
  d["kind"] = int(c.kind);
  d["lr"] = c.lr;
  d["weight_decay"] = c.weight_decay;
  d["momentum"] = c.momentum;
  d["dampening"] = c.dampening;
  d["nesterov"] = c.nesterov;
  d["beta1"] = c.beta1;
  d["beta2"] = c.beta2;
  d["amsgrad"] = c.amsgrad;
  d["eps"] = c.eps;
  d["alpha"] = c.alpha;
  d["centered"] = c.centered;
  d["lr_decay"] = c.lr_decay;
  d["initial_accumulator"] = c.initial_accumulator;
  return d;
}

void bind_optim(py::module_& m) {
  m.def(
      "optimizer_state_count",
      [](const py::dict& config) { return optimizer_state_count(opt_config_from_dict(config)); },
      "config"_a,
      "How many state buffers, each of the parameters' length, the optimizer needs.");

  m.def(
      "optimizer_config",
      [](const py::dict& config) { return opt_config_to_dict(opt_config_from_dict(config)); },
      "config"_a, "The config as the core reads it: every field, defaults filled in.");

  m.def(
      "optimizer_init_state",
      [](const py::dict& config, const py::list& states) {
        const OptConfig cfg = opt_config_from_dict(config);
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
      [](const py::dict& config, py::object p, py::object g, const py::list& states,
         int64_t step) {
        const OptConfig cfg = opt_config_from_dict(config);
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
