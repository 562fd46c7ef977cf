// Named types across the boundary: Python reads fields by name, never by
// position, and the kinds are enums whose names come from here alone
// (fastmlp._enums derives its tables from them).
//
//   _core.Activation, Loss, OptimizerKind, Init           py::enum_
//   _core.LayerSpec(in_features, out_features, activation, dropout, batch_norm)
//   _core.OptConfig(kind, **fields)                       validated; read-only fields
//   _core.StepResult, _core.EpochResult                   what a step / an epoch reports
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>

#include "bindings/types.h"
#include "network/network.h"
#include "optim/optimizer.h"

namespace fastmlp::bind {

using namespace pybind11::literals;

namespace {

bool is_bool(py::handle h) {
  return PyBool_Check(h.ptr()) || py::isinstance(h, py::module_::import("numpy").attr("bool_"));
}

// A real number: Python or NumPy int/float, never bool (True is not a rate).
bool is_number(py::handle h) {
  if (is_bool(h)) return false;
  PyObject* o = h.ptr();
  if (PyFloat_Check(o) || PyLong_Check(o) || PyIndex_Check(o)) return true;
  PyNumberMethods* nb = Py_TYPE(o)->tp_as_number;
  return nb != nullptr && nb->nb_float != nullptr;
}

void read_field(const std::string& key, py::handle v, double& out) {
  if (!is_number(v)) throw py::type_error(key + ": expected a number, got " + type_name(v));
  out = py::cast<double>(py::reinterpret_borrow<py::object>(v));
}

void read_field(const std::string& key, py::handle v, bool& out) {
  if (!is_bool(v)) throw py::type_error(key + ": expected a bool, got " + type_name(v));
  out = py::cast<bool>(py::reinterpret_borrow<py::object>(v));
}

py::list opt_field_names() {
  py::list names;
#define FASTMLP_FIELD_NAME(type, name, init, doc) names.append(#name);
  FASTMLP_OPT_FIELDS(FASTMLP_FIELD_NAME)
#undef FASTMLP_FIELD_NAME
  return names;
}

// kind and every field as keywords; unknown keys and wrong types raise,
// naming the key; the values are validated (fastmlp::validate).
OptConfig opt_config_from_kwargs(const py::kwargs& kw) {
  OptConfig c;
  bool have_kind = false;
  for (auto item : kw) {
    const std::string key = py::cast<std::string>(item.first);
    py::handle v = item.second;
    if (key == "kind") {
      if (!py::isinstance<OptKind>(v))
        throw py::type_error("kind: expected a _core.OptimizerKind, got " + type_name(v));
      c.kind = py::cast<OptKind>(v);
      have_kind = true;
      continue;
    }
    bool known = false;
#define FASTMLP_READ_FIELD(type, name, init, doc) \
  if (key == #name) {                             \
    read_field(key, v, c.name);                   \
    known = true;                                 \
  }
    FASTMLP_OPT_FIELDS(FASTMLP_READ_FIELD)
#undef FASTMLP_READ_FIELD
    if (!known)
      throw py::value_error("config: unknown field '" + key + "' (expected kind, " +
                            py::cast<std::string>(py::str(", ").attr("join")(opt_field_names())) +
                            ")");
  }
  if (!have_kind) throw py::value_error("config: missing 'kind' (a _core.OptimizerKind)");
  try {
    validate(c);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  return c;
}

py::dict opt_config_as_dict(const OptConfig& c) {
  py::dict d;
  d["kind"] = c.kind;
#define FASTMLP_FIELD_TO_DICT(type, name, init, doc) d[#name] = c.name;
  FASTMLP_OPT_FIELDS(FASTMLP_FIELD_TO_DICT)
#undef FASTMLP_FIELD_TO_DICT
  return d;
}

PyTypeObject* step_result_type = nullptr;

}  // namespace

py::object to_python(const StepResult& r) {
  PyObject* o = PyStructSequence_New(step_result_type);
  if (!o) throw py::error_already_set();
  PyStructSequence_SetItem(o, 0, PyFloat_FromDouble(r.loss));
  PyStructSequence_SetItem(o, 1, py::bool_(r.ok).release().ptr());
  PyStructSequence_SetItem(o, 2, PyLong_FromSsize_t(r.bad_layer));
  return py::reinterpret_steal<py::object>(o);
}

void bind_types(py::module_& m) {
  py::enum_<Act>(m, "Activation", "Activation functions (csrc/nn/activations.h)")
      .value("identity", Act::identity)
      .value("sigmoid", Act::sigmoid)
      .value("tanh", Act::tanh)
      .value("relu", Act::relu)
      .value("leaky_relu", Act::leaky_relu)
      .value("elu", Act::elu)
      .value("gelu", Act::gelu)
      .value("softplus", Act::softplus);
  py::enum_<Loss>(m, "Loss", "Losses (csrc/nn/losses.h)")
      .value("mse", Loss::mse)
      .value("cross_entropy", Loss::cross_entropy)
      .value("binary_cross_entropy", Loss::binary_cross_entropy)
      .value("poisson", Loss::poisson);
  py::enum_<OptKind>(m, "OptimizerKind", "Optimizers (csrc/optim/optimizer.h)")
      .value("sgd", OptKind::sgd)
      .value("adam", OptKind::adam)
      .value("adamw", OptKind::adamw)
      .value("rmsprop", OptKind::rmsprop)
      .value("adagrad", OptKind::adagrad);
  py::enum_<Init>(m, "Init", "Weight initializations (csrc/network/parameters.h)")
      .value("he_uniform", Init::he_uniform)
      .value("he_normal", Init::he_normal)
      .value("glorot_uniform", Init::glorot_uniform)
      .value("glorot_normal", Init::glorot_normal)
      .value("lecun_normal", Init::lecun_normal)
      .value("zeros", Init::zeros);

  py::class_<LayerSpec>(m, "LayerSpec", "One layer of a core network (csrc/network/layer.h).")
      .def(py::init([](index_t in, index_t out, Act act, double dropout, bool batch_norm) {
             return LayerSpec{in, out, act, dropout, batch_norm};
           }),
           "in_features"_a, "out_features"_a,
           py::arg_v("activation", Act::identity, "Activation.identity"), "dropout"_a = 0.0,
           "batch_norm"_a = false)
      .def_readonly("in_features", &LayerSpec::in)
      .def_readonly("out_features", &LayerSpec::out)
      .def_readonly("activation", &LayerSpec::act)
      .def_readonly("dropout", &LayerSpec::dropout)
      .def_readonly("batch_norm", &LayerSpec::batch_norm)
      .def(py::pickle(
          [](const LayerSpec& s) { return py::make_tuple(s.in, s.out, s.act, s.dropout, s.batch_norm); },
          [](const py::tuple& t) {
            return LayerSpec{t[0].cast<index_t>(), t[1].cast<index_t>(), t[2].cast<Act>(),
                             t[3].cast<double>(), t[4].cast<bool>()};
          }))
      .def("__repr__", [](const LayerSpec& s) {
        return "LayerSpec(" + std::to_string(s.in) + ", " + std::to_string(s.out) + ", " +
               py::cast<std::string>(py::str(py::cast(s.act))) + ", dropout=" +
               py::cast<std::string>(py::repr(py::float_(s.dropout))) +
               ", batch_norm=" + (s.batch_norm ? "True" : "False") + ")";
      });

  py::class_<OptConfig> opt(m, "OptConfig",
                            "An optimizer's hyper-parameters as the core reads them "
                            "(csrc/optim/optimizer.h). Built from keywords (kind and any "
                            "field), validated, read-only.");
  opt.def(py::init(&opt_config_from_kwargs))
      .def_readonly("kind", &OptConfig::kind)
      .def_static("fields", &opt_field_names, "The field names, kind excluded, in C++ order.")
      .def("as_dict", &opt_config_as_dict, "kind and every field by name")
      .def("__eq__",
           [](const OptConfig& a, const py::object& b) -> py::object {
             if (!py::isinstance<OptConfig>(b)) return py::reinterpret_borrow<py::object>(Py_NotImplemented);
             return py::bool_(opt_config_as_dict(a).equal(opt_config_as_dict(b.cast<const OptConfig&>())));
           })
      .def(py::pickle([](const OptConfig& c) { return opt_config_as_dict(c); },
                      [](const py::dict& d) {
                        py::kwargs kw;
                        for (auto item : d) kw[item.first] = item.second;
                        return opt_config_from_kwargs(kw);
                      }))
      .def("__repr__", [](const OptConfig& c) {
        return "OptConfig(" + py::cast<std::string>(py::str(opt_config_as_dict(c))) + ")";
      });
  opt.attr("__hash__") = py::none();
#define FASTMLP_BIND_FIELD(type, name, init, doc) opt.def_readonly(#name, &OptConfig::name, doc);
  FASTMLP_OPT_FIELDS(FASTMLP_BIND_FIELD)
#undef FASTMLP_BIND_FIELD

  // A struct sequence (as os.stat_result): named fields at the cost of a
  // tuple. A py::class_ instance and its attribute getters cost ~0.4 us more
  // per step, 5% of a small network's whole train_step.
  static PyStructSequence_Field step_fields[] = {
      {"loss", "batch loss, penalty included"},
      {"ok", "loss and every gradient finite; the step was taken"},
      {"bad_layer", "when not ok: the layer to blame, else -1"},
      {nullptr, nullptr}};
  static PyStructSequence_Desc step_desc = {
      "fastmlp._core.StepResult", "What a training step reports (csrc/network/trainer.h).",
      step_fields, 3};
  PyTypeObject* step_type = PyStructSequence_NewType(&step_desc);
  if (!step_type) throw py::error_already_set();
  step_result_type = step_type;
  m.add_object("StepResult", py::reinterpret_steal<py::object>(
                                 reinterpret_cast<PyObject*>(step_type)));

  py::class_<EpochResult>(m, "EpochResult",
                          "What an epoch, or a part of one, reports (csrc/network/trainer.h).")
      .def(py::init<>())
      .def_readonly("loss_sum", &EpochResult::loss_sum)
      .def_readonly("rows", &EpochResult::rows)
      .def_readonly("batches", &EpochResult::batches)
      .def_readonly("correct", &EpochResult::correct)
      .def_readonly("predictions", &EpochResult::predictions)
      .def_readonly("grad_norm_sum", &EpochResult::grad_norm_sum)
      .def_readonly("interrupted", &EpochResult::interrupted)
      .def_readonly("diverged", &EpochResult::diverged)
      .def_readonly("bad_batch", &EpochResult::bad_batch)
      .def_readonly("bad_layer", &EpochResult::bad_layer)
      .def_readonly("bad_loss", &EpochResult::bad_loss);
}

}  // namespace fastmlp::bind
