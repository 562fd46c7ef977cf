// fastmlp._core.Network32 / Network64: the network object. Parameter and
// gradient views are zero-copy NumPy arrays whose base is the Python object
// of the network, so they keep it alive; the buffers never move.
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <memory>
#include <tuple>

#include "bindings/arrays.h"
#include "network/network.h"

namespace fastmlp::bind {

using namespace pybind11::literals;

namespace {

template <class T>
py::array view(py::object owner, T* ptr, std::vector<py::ssize_t> shape) {
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t s = sizeof(T);
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= shape[i];
  }
  return py::array_t<T>(shape, strides, ptr, owner);
}

template <class T>
Network<T>& net_of(py::object& self) {
  return self.cast<Network<T>&>();
}

// Builds a Target from a (n,) int32 class-id array or a (n, k) float array.
template <class T>
Target<T> make_target(const Network<T>& net, const py::array& t, index_t n) {
  const index_t k = net.output_size();
  Target<T> out;
  if (py::isinstance<carray<int32_t>>(t) && (t.flags() & py::array::c_style)) {
    if (net.loss_kind() != Loss::cross_entropy)
      throw py::value_error("y: class ids are only accepted with cross_entropy");
    auto a = py::reinterpret_borrow<carray<int32_t>>(t);
    const int32_t* p = require<int32_t>(a, "y", {n});
    for (index_t i = 0; i < n; ++i)
      if (p[i] < 0 || p[i] >= k)
        throw py::value_error("y: class id " + std::to_string(p[i]) + " out of range [0, " +
                              std::to_string(k) + ")");
    out.labels = p;
  } else if (py::isinstance<carray<T>>(t) && (t.flags() & py::array::c_style)) {
    auto a = py::reinterpret_borrow<carray<T>>(t);
    out.dense = require<T>(a, "y", {n, k});
  } else {
    throw py::type_error(std::string("y: expected a C-contiguous int32 (n,) or ") +
                         dtype_name<T>() + " (n, k) array");
  }
  return out;
}

template <class T>
const T* input_of(const Network<T>& net, const carray<T>& x) {
  return require<T>(x, "X", {-1, net.input_size()});
}

template <class T>
void bind_network(py::module_& m, const char* name) {
  using Net = Network<T>;
  py::class_<Net>(m, name)
      .def(py::init([](const std::vector<std::tuple<index_t, index_t, int>>& layers, int loss) {
             std::vector<LayerSpec> specs;
             for (const auto& [in, out, act] : layers) specs.push_back({in, out, Act(act)});
             return std::make_unique<Net>(std::move(specs), Loss(loss));
           }),
           "layers"_a, "loss"_a)
      .def_property_readonly("num_layers", &Net::num_layers)
      .def_property_readonly("num_params", &Net::num_params)
      .def_property_readonly("input_size", &Net::input_size)
      .def_property_readonly("output_size", &Net::output_size)
      .def_property_readonly("loss_id", [](const Net& n) { return int(n.loss_kind()); })
      .def("layer_spec",
           [](const Net& n, index_t l) {
             if (l < 0 || l >= n.num_layers()) throw py::index_error("layer index out of range");
             const LayerSpec& s = n.layer(l);
             return py::make_tuple(s.in, s.out, int(s.act));
           })
      .def("weight",
           [](py::object self, index_t l) {
             Net& n = net_of<T>(self);
             if (l < 0 || l >= n.num_layers()) throw py::index_error("layer index out of range");
             return view<T>(self, n.params() + n.w_offset(l), {n.layer(l).out, n.layer(l).in});
           })
      .def("bias",
           [](py::object self, index_t l) {
             Net& n = net_of<T>(self);
             if (l < 0 || l >= n.num_layers()) throw py::index_error("layer index out of range");
             return view<T>(self, n.params() + n.b_offset(l), {n.layer(l).out});
           })
      .def("weight_grad",
           [](py::object self, index_t l) {
             Net& n = net_of<T>(self);
             if (l < 0 || l >= n.num_layers()) throw py::index_error("layer index out of range");
             return view<T>(self, n.grads() + n.w_offset(l), {n.layer(l).out, n.layer(l).in});
           })
      .def("bias_grad",
           [](py::object self, index_t l) {
             Net& n = net_of<T>(self);
             if (l < 0 || l >= n.num_layers()) throw py::index_error("layer index out of range");
             return view<T>(self, n.grads() + n.b_offset(l), {n.layer(l).out});
           })
      .def("initialize",
           [](Net& n, const std::vector<int>& schemes, uint64_t seed) {
             std::vector<Init> s;
             for (int v : schemes) s.push_back(Init(v));
             py::gil_scoped_release nogil;
             n.initialize(s, seed);
           },
           "schemes"_a, "seed"_a)
      .def("forward",
           [](Net& n, carray<T> x) {
             const T* xp = input_of(n, x);
             const index_t rows = x.shape(0), k = n.output_size();
             carray<T> out({rows, k});
             T* op = out.mutable_data();
             py::gil_scoped_release nogil;
             const T* y = n.forward(xp, rows);
             std::copy(y, y + rows * k, op);
             return out;
           },
           "X"_a.noconvert())
      .def("loss",
           [](Net& n, carray<T> x, py::array y) {
             const T* xp = input_of(n, x);
             const Target<T> t = make_target(n, y, x.shape(0));
             py::gil_scoped_release nogil;
             return n.loss(xp, t, x.shape(0));
           },
           "X"_a.noconvert(), "y"_a)
      .def("compute_gradients",
           [](Net& n, carray<T> x, py::array y) {
             const T* xp = input_of(n, x);
             const Target<T> t = make_target(n, y, x.shape(0));
             py::gil_scoped_release nogil;
             return n.compute_gradients(xp, t, x.shape(0));
           },
           "X"_a.noconvert(), "y"_a)
      .def("train_step",
           [](Net& n, carray<T> x, py::array y) {
             const T* xp = input_of(n, x);
             const Target<T> t = make_target(n, y, x.shape(0));
             py::gil_scoped_release nogil;
             return n.train_step(xp, t, x.shape(0));
           },
           "X"_a.noconvert(), "y"_a)
      .def("train_epoch",
           [](Net& n, carray<T> x, py::array y, std::optional<carray<int64_t>> perm,
              index_t batch_size, bool check_signals) {
             const T* xp = input_of(n, x);
             const index_t rows = x.shape(0);
             const Target<T> t = make_target(n, y, rows);
             const int64_t* pp = nullptr;
             if (perm) {
               pp = require<int64_t>(*perm, "perm", {rows});
               for (index_t i = 0; i < rows; ++i)
                 if (pp[i] < 0 || pp[i] >= rows) throw py::value_error("perm: index out of range");
             }
             if (batch_size <= 0) throw py::value_error("batch_size: must be a positive integer");
             std::unique_ptr<py::error_already_set> pending;
             std::function<bool()> poll;
             if (check_signals)
               poll = [&pending]() {
                 py::gil_scoped_acquire g;
                 if (PyErr_CheckSignals() != 0) {
                   pending = std::make_unique<py::error_already_set>();
                   return true;
                 }
                 return false;
               };
             EpochResult r;
             {
               py::gil_scoped_release nogil;
               r = n.train_epoch(xp, t, rows, pp, batch_size, poll);
             }
             if (pending) throw *pending;
             py::dict d;
             d["loss_sum"] = r.loss_sum;
             d["rows"] = r.rows;
             d["batches"] = r.batches;
             d["interrupted"] = r.interrupted;
             d["diverged"] = r.diverged;
             d["bad_batch"] = r.bad_batch;
             return d;
           },
           "X"_a.noconvert(), "y"_a, "perm"_a.noconvert(), "batch_size"_a,
           "check_signals"_a = true)
      .def("layer_state",
           [](Net& n, index_t l) {
             // Copies of z, y and d of layer l after the last forward/backward.
             if (l < 0 || l >= n.num_layers()) throw py::index_error("layer index out of range");
             const index_t rows = n.last_rows(), k = n.layer(l).out;
             auto copy = [&](const T* p) {
               carray<T> a({rows, k});
               if (p) std::copy(p, p + rows * k, a.mutable_data());
               return a;
             };
             return py::make_tuple(copy(n.z(l)), copy(n.y(l)), copy(n.d(l)));
           })
      .def("set_sgd",
           [](Net& n, double lr, double momentum, bool nesterov, double weight_decay) {
             n.set_sgd(SgdConfig<T>{T(lr), T(momentum), nesterov, T(weight_decay)});
           },
           "lr"_a, "momentum"_a = 0.0, "nesterov"_a = false, "weight_decay"_a = 0.0)
      .def_property("step_count", &Net::step_count, &Net::set_step_count);
}

}  // namespace

void bind_networks(py::module_& m) {
  bind_network<float>(m, "Network32");
  bind_network<double>(m, "Network64");
}

}  // namespace fastmlp::bind
