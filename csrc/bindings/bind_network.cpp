// fastmlp._core.Network32 / Network64: the network object. Parameter,
// gradient and optimizer-state views are zero-copy NumPy arrays whose base is
// the Python object of the network, so they keep it alive; the buffers are
// never freed or moved while it lives (a new optimizer reuses its state
// buffers, growing them at most).
#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "bindings/types.h"
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
Network<T>& net_of(const py::object& self) {
  return self.cast<Network<T>&>();
}

// Every pass entered from Python starts here: while a view of the weights is
// alive it may have been written since the last call, so the bf16 panels
// packed from them (network.h) are stale.
template <class T>
Network<T>& entering(Network<T>& n) {
  if (n.weight_handles() > 0) n.weights_changed();
  return n;
}

// Runs f() as one pass of n (network/guard.h): the GIL released first, then
// the network's pass mutex, so that a holder waiting for the GIL (train_epoch
// polls for Ctrl-C) never waits on a thread that holds the GIL and waits for
// the mutex. Other threads' passes on the same network wait for this one.
template <class T, class F>
auto pass(const Network<T>& n, F&& f) {
  if (n.guard().in_pass_here())
    throw std::runtime_error(
        "this model is already running a pass in this thread (a signal handler called it "
        "between two batches?); call it after that pass returns");
  py::gil_scoped_release nogil;
  Guard::Pass p(n.guard());
  return f();
}

// A Python `with` block that holds a network's training claim (guard.h):
// MLP.fit holds one across its epochs, so a second thread's fit or
// train_step is refused at once instead of interleaving its steps.
template <class T>
struct TrainingClaim {
  py::object net;
  std::string what;
  bool held = false;
  TrainingClaim(py::object n, std::string w) : net(std::move(n)), what(std::move(w)) {}
  TrainingClaim(const TrainingClaim&) = delete;
  TrainingClaim& operator=(const TrainingClaim&) = delete;
  void enter() {
    if (held) throw std::runtime_error("training: this claim is already held");
    net.cast<Network<T>&>().guard().claim_training(what);
    held = true;
  }
  void exit() {
    if (!held) return;
    held = false;
    net.cast<Network<T>&>().guard().release_training();
  }
  ~TrainingClaim() { exit(); }
};

// The NumPy base of a view of the weights (and of every array derived from
// it, which keeps it alive): the network's writer handle while it lives.
template <class T>
struct WeightHandle {
  py::object net;  // keeps the network, and so its buffers, alive
  Network<T>* n;
  explicit WeightHandle(py::object self) : net(std::move(self)), n(&net.cast<Network<T>&>()) {
    n->add_weight_handle();
  }
  WeightHandle(const WeightHandle&) = delete;
  WeightHandle& operator=(const WeightHandle&) = delete;
  ~WeightHandle() { n->drop_weight_handle(); }
};

// A writable view of weights (W of one layer, or the flat buffer that holds
// them all) whose base is a fresh WeightHandle.
template <class T>
py::array weight_view(py::object self, T* ptr, std::vector<py::ssize_t> shape) {
  py::object h = py::cast(new WeightHandle<T>(self), py::return_value_policy::take_ownership);
  return view<T>(h, ptr, std::move(shape));
}

inline py::value_error bad_class_id(int64_t id, index_t k) {
  const std::string ks = std::to_string(k);
  return py::value_error("y: class ids must lie in [0, " + ks + ") for a network with " + ks +
                         " outputs, got " + std::to_string(id));
}

template <class I>
void check_class_ids(const I* p, index_t n, index_t k) {
  const ValueScan s = scan_values(p, std::size_t(n));
  if (n > 0 && (s.lo < 0 || s.hi >= double(k)))
    throw bad_class_id(int64_t(s.lo < 0 ? s.lo : s.hi), k);
}

// Builds a Target from (n,) class ids, int32 (read in place) or int64 (checked,
// then narrowed into `ids`, which must outlive the Target), or from a (n, k)
// float array. Class ids are always range-checked. With check_dense, (n, k)
// targets are checked too (finite, and >= 0 for cross_entropy and poisson or
// in [0, 1] for binary cross-entropy: the rules of fastmlp._validation.check_y), for
// callers whose targets Python has not checked: train_step's fast path. fit
// checks its targets once, not at every chunk of an epoch.
template <class T>
Target<T> make_target(const Network<T>& net, const py::array& t, index_t n,
                      std::vector<int32_t>& ids, bool check_dense = false) {
  const index_t k = net.output_size();
  Target<T> out;
  const bool c_style = t.flags() & py::array::c_style;
  const bool i32 = py::isinstance<py::array_t<int32_t>>(t) && c_style;
  const bool i64 = py::isinstance<py::array_t<int64_t>>(t) && c_style && t.ndim() == 1;
  if (i32 || i64) {
    if (net.loss_kind() != Loss::cross_entropy)
      throw py::value_error("y: class ids are only accepted with cross_entropy");
    if (i32) {
      auto a = py::reinterpret_borrow<carray<int32_t>>(t);
      out.labels = require<int32_t>(a, "y", {n});
      check_class_ids(out.labels, n, k);
    } else {
      auto a = py::reinterpret_borrow<carray<int64_t>>(t);
      const int64_t* p = require<int64_t>(a, "y", {n});
      check_class_ids(p, n, k);
      ids.assign(p, p + n);
      out.labels = ids.data();
    }
  } else if (py::isinstance<carray<T>>(t) && c_style) {
    auto a = py::reinterpret_borrow<carray<T>>(t);
    out.dense = require<T>(a, "y", {n, k});
    if (!check_dense) return out;
    const Loss loss = net.loss_kind();
    const ValueScan s = scan_values(out.dense, std::size_t(n * k));
    if (!s.finite) throw py::value_error("y: contains NaN or infinity");
    if (loss == Loss::cross_entropy && s.lo < 0.0)
      throw py::value_error("y: class probabilities must be finite and non-negative");
    if (loss == Loss::binary_cross_entropy && (s.lo < 0.0 || s.hi > 1.0))
      throw py::value_error("y: binary_cross_entropy targets must lie in [0, 1]");
    if (loss == Loss::poisson && s.lo < 0.0)
      throw py::value_error("y: poisson targets must be >= 0, got " + num_str(s.lo));
  } else {
    throw py::type_error(std::string("y: expected a C-contiguous int32 or int64 (n,) or ") +
                         dtype_name<T>() + " (n, k) array");
  }
  return out;
}

// A data-parallel reduce callback from inside a pass (GIL released):
// reduce(partials, out) gets read-only views of this process's partial sums
// ((pieces, width), or (width,) with pieces < 0) and of out (width), valid for
// the call only. A Python error is kept in `pending` for the binding to
// rethrow once the pass has unwound.
inline void call_reduce(const py::function& reduce, const double* partials, index_t pieces,
                        index_t width, double* total,
                        std::unique_ptr<py::error_already_set>& pending) {
  py::gil_scoped_acquire g;
  try {
    py::capsule none(total, [](void*) {});  // no owner: borrowed memory
    const index_t item = index_t(sizeof(double));
    py::array_t<double> a = pieces < 0 ? py::array_t<double>({width}, {item}, partials, none)
                                       : py::array_t<double>({pieces, width},
                                                             {width * item, item}, partials, none);
    a.attr("flags").attr("writeable") = false;
    py::array_t<double> out({width}, {item}, total, none);
    reduce(a, out);
  } catch (py::error_already_set& e) {
    pending = std::make_unique<py::error_already_set>(std::move(e));
    throw std::runtime_error("reduce failed");
  }
}

// The step that finish_step / finish_shard (`what`) completes: a
// forward_backward on `rows` rows with no other pass since. Called inside the
// pass: another thread's pass in between clears the pending step.
template <class T>
void check_pending(const Network<T>& n, index_t rows, const char* what) {
  if (n.pending_rows() < 0)
    throw std::invalid_argument(std::string(what) +
                                ": no forward_backward to finish (each step needs its own, and "
                                "no other pass in between)");
  if (rows != n.pending_rows())
    throw std::invalid_argument("rows: expected the " + std::to_string(n.pending_rows()) +
                                " rows of the last forward_backward, got " +
                                std::to_string(rows));
}

template <class T>
const T* input_of(const Network<T>& net, const carray<T>& x) {
  return require<T>(x, "X", {-1, net.input_size()});
}

// Optional per-row and per-class weights of the loss (bindings/arrays.h
// checks them); the Python layer has converted them already.
template <class T>
void add_weights(const Network<T>& net, Target<T>& t, index_t n, const py::object& sw,
                 const py::object& cw) {
  t.sample_weight = loss_weights<T>(sw, "sample_weight", n, "row");
  if (!cw.is_none() && (net.loss_kind() == Loss::mse || net.loss_kind() == Loss::poisson))
    throw py::value_error(std::string("class_weight: not defined for the ") +
                          (net.loss_kind() == Loss::mse ? "mse" : "poisson") +
                          " loss (use sample_weight)");
  const index_t classes = net.loss_kind() == Loss::cross_entropy ? net.output_size() : 2;
  t.class_weight = loss_weights<T>(cw, "class_weight", classes, "class");
}

template <class T>
py::array param_view(py::object self, index_t l, const std::string& what, bool grad) {
  Network<T>& n = net_of<T>(self);
  check_layer(l, n.num_layers());
  Parameters<T>& p = n.parameters();
  const LayerTensors<T> t = grad ? p.grad(l) : p.layer(l);
  const LayerSpec& s = n.layer(l);
  if (what == "W") return grad ? view<T>(self, t.W, {s.out, s.in}) : weight_view<T>(self, t.W, {s.out, s.in});
  if (what == "b") return view<T>(self, t.b, {s.out});
  if (what != "gamma" && what != "beta")
    throw py::value_error("what: expected W, b, gamma or beta, got " + what);
  if (!s.batch_norm) throw py::value_error("layer " + std::to_string(l) + " has no batch norm");
  return view<T>(self, what == "gamma" ? t.gamma : t.beta, {s.out});
}

// Layer l's running mean or variance, a writable view; None without batch norm.
template <class T>
py::object running_view(py::object self, index_t l, bool var) {
  Network<T>& n = net_of<T>(self);
  check_layer(l, n.num_layers());
  T* p = var ? n.parameters().running_var(l) : n.parameters().running_mean(l);
  if (!p) return py::none();
  return view<T>(self, p, {n.layer(l).out});
}

// What one batch's call needs from Python: X's rows and the target. Not
// copyable: t.labels may point into ids.
template <class T>
struct Batch {
  Batch() = default;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;
  const T* x = nullptr;
  index_t rows = 0;
  Target<T> t;
  std::vector<int32_t> ids;  // class ids narrowed from int64, when given so
};

template <class T>
void load_batch(Batch<T>& b, const Network<T>& n, const carray<T>& x, const py::array& y,
                const py::object& sw, const py::object& cw, bool check_dense = false) {
  b.x = input_of(n, x);
  b.rows = x.shape(0);
  b.t = make_target(n, y, b.rows, b.ids, check_dense);
  add_weights(n, b.t, b.rows, sw, cw);
}

// A training step's batch, for callers whose arrays Python hands over
// without checking their values (MLP.train_step's fast path, a per-batch
// cost that dominates small networks): at least one row, X finite, y's
// values in range, on top of load_batch.
template <class T>
void load_step_batch(Batch<T>& b, const Network<T>& n, const carray<T>& x, const py::array& y,
                     const py::object& sw, const py::object& cw) {
  const T* xp = input_of(n, x);
  if (x.shape(0) == 0)
    throw py::value_error("X: expected at least one sample, got shape " + shape_str(x));
  if (!scan_values<T, false>(xp, std::size_t(x.shape(0) * n.input_size())).finite)
    throw py::value_error("X: contains NaN or infinity");
  load_batch(b, n, x, y, sw, cw, /*check_dense=*/true);
}

// A previous call's result for the same epoch, to continue: its sums only.
inline EpochResult continued(const EpochResult& c) {
  EpochResult r;
  r.loss_sum = c.loss_sum;
  r.rows = c.rows;
  r.batches = c.batches;
  r.correct = c.correct;
  r.predictions = c.predictions;
  r.grad_norm_sum = c.grad_norm_sum;
  return r;
}

template <class T>
void bind_network(py::module_& m, const char* name) {
  using Net = Network<T>;
  py::class_<WeightHandle<T>>(m, (std::string("_WeightHandle") + (sizeof(T) == 4 ? "32" : "64")).c_str(),
                              "Base of the NumPy views of a network's weights: while one lives, "
                              "every pass repacks the bf16 weight panels (network.h).");
  const std::string claim_name = std::string("_TrainingClaim") + (sizeof(T) == 4 ? "32" : "64");
  py::class_<TrainingClaim<T>>(m, claim_name.c_str(),
                               "Network.training(what): a `with` block that holds the "
                               "network's training claim.")
      .def("__enter__", [](py::object self) {
        self.cast<TrainingClaim<T>&>().enter();
        return self;
      })
      .def("__exit__", [](TrainingClaim<T>& c, py::args) {
        c.exit();
        return false;
      });
  py::class_<Net>(m, name)
      .def(py::init([](const std::vector<LayerSpec>& layers, Loss loss) {
             return std::make_unique<Net>(layers, loss);
           }),
           "layers"_a, "loss"_a)
      .def("training",
           [](py::object self, std::string what) {
             return std::make_unique<TrainingClaim<T>>(std::move(self), std::move(what));
           },
           "what"_a,
           "A context manager that claims the network for training in this thread for its "
           "block: training calls from other threads raise RuntimeError naming `what` until it "
           "ends; calls from this thread pass.")
      .def_property_readonly("training_claimed",
                             [](const Net& n) { return n.guard().training(); },
                             "Whether some thread is training the network now.")
      .def_property_readonly("num_layers", &Net::num_layers)
      .def_property_readonly("num_params", [](const Net& n) { return n.parameters().count(); })
      .def_property_readonly("loss_kind", &Net::loss_kind)
      .def_property_readonly("bf16_panels_fresh", &Net::panels_fresh,
                             "Whether the bf16 weight panels hold the weights now (network.h); "
                             "for tests.")
      .def("layer_spec",
           [](const Net& n, index_t l) { return n.layer(check_layer(l, n.num_layers())); },
           "layer"_a)
      .def("param",
           [](py::object self, index_t l, const std::string& what) {
             return param_view<T>(self, l, what, false);
           },
           "layer"_a, "what"_a)
      .def("grad",
           [](py::object self, index_t l, const std::string& what) {
             return param_view<T>(self, l, what, true);
           },
           "layer"_a, "what"_a)
      .def("running_mean", [](py::object self, index_t l) { return running_view<T>(self, l, false); },
           "layer"_a)
      .def("running_var", [](py::object self, index_t l) { return running_view<T>(self, l, true); },
           "layer"_a)
      .def("params_flat",
           [](py::object self) {
             Net& n = net_of<T>(self);
             return weight_view<T>(self, n.parameters().values(), {n.parameters().size()});
           })
      .def("optimizer_state",
           [](py::object self) {
             Net& n = net_of<T>(self);
             py::list out;
             for (int i = 0; i < n.trainer().optimizer_state_count(); ++i)
               out.append(view<T>(self, n.trainer().optimizer_state(i), {n.parameters().size()}));
             return out;
           })
      .def("initialize",
           [](Net& n, const std::vector<Init>& schemes, uint64_t seed) {
             Guard::Training claim(n.guard(), "initialize");
             pass(n, [&] { n.initialize(schemes, seed); });
           },
           "schemes"_a, "seed"_a)
      .def("forward",
           [](Net& n, carray<T> x, bool training) {
             entering(n);
             const T* xp = input_of(n, x);
             const index_t rows = x.shape(0), k = n.output_size();
             carray<T> out({rows, k});
             T* op = out.mutable_data();
             pass(n, [&] {
               const T* y = n.forward(xp, rows, training);
               std::copy(y, y + rows * k, op);
             });
             return out;
           },
           "X"_a.noconvert(), "training"_a = false)
      .def("loss",
           [](Net& n, carray<T> x, py::array y, bool training, py::object sw, py::object cw) {
             entering(n);
             Batch<T> b;
             load_batch(b, n, x, y, sw, cw);
             return pass(n, [&] { return n.loss(b.x, b.t, b.rows, training); });
           },
           "X"_a.noconvert(), "y"_a, "training"_a = false, "sample_weight"_a = py::none(),
           "class_weight"_a = py::none())
      .def("compute_gradients",
           [](Net& n, carray<T> x, py::array y, py::object sw, py::object cw) {
             Guard::Training claim(n.guard(), "compute_gradients");
             entering(n);
             Batch<T> b;
             load_batch(b, n, x, y, sw, cw);
             return pass(n, [&] { return n.compute_gradients(b.x, b.t, b.rows); });
           },
           "X"_a.noconvert(), "y"_a, "sample_weight"_a = py::none(), "class_weight"_a = py::none())
      .def("train_step",
           [](Net& n, carray<T> x, py::array y, py::object sw, py::object cw) {
             Guard::Training claim(n.guard(), "train_step");
             entering(n);
             Batch<T> b;
             load_step_batch(b, n, x, y, sw, cw);
             const StepResult r = pass(n, [&] { return n.train_step(b.x, b.t, b.rows); });
             return to_python(r);
           },
           "X"_a.noconvert(), "y"_a, "sample_weight"_a = py::none(), "class_weight"_a = py::none())
      // The step in its phases, for a caller that works on the gradients
      // between backward and the update (an all-reduce): forward_backward,
      // then finish_step(loss, rows) run exactly what train_step runs.
      .def("forward_backward",
           [](Net& n, carray<T> x, py::array y, py::object sw, py::object cw) {
             Guard::Training claim(n.guard(), "forward_backward");
             entering(n);
             Batch<T> b;
             load_step_batch(b, n, x, y, sw, cw);
             return pass(n, [&] { return n.forward_backward(b.x, b.t, b.rows); });
           },
           "X"_a.noconvert(), "y"_a, "sample_weight"_a = py::none(), "class_weight"_a = py::none())
      .def("finish_step",
           [](Net& n, double loss, index_t rows) {
             Guard::Training claim(n.guard(), "finish_step");
             const StepResult r = pass(n, [&] {
               check_pending(n, rows, "finish_step");
               return n.finish_step(loss, rows);
             });
             return to_python(r);
           },
           "loss"_a, "rows"_a)
      // finish_step on this process's shard [begin, end) of the flat buffers
      // (reduction="sharded"; Trainer::finish_span): reduce(partials, out)
      // receives this process's partial sums (read-only, width values) and
      // writes the sums over every shard into out; it runs with the GIL held.
      .def("finish_shard",
           [](Net& n, double loss, index_t rows, index_t begin, index_t end,
              py::function reduce) {
             Guard::Training claim(n.guard(), "finish_shard");
             std::unique_ptr<py::error_already_set> pending;
             const typename Trainer<T>::SpanReduce call = [&](const double* partials,
                                                              index_t width, double* total) {
               call_reduce(reduce, partials, -1, width, total, pending);
             };
             StepResult r;
             try {
               r = pass(n, [&] {
                 check_pending(n, rows, "finish_shard");
                 return n.finish_shard(loss, rows, begin, end, call);
               });
             } catch (...) {
               if (pending) throw *pending;
               throw;
             }
             return to_python(r);
           },
           "loss"_a, "rows"_a, "begin"_a, "end"_a, "reduce"_a)
      // One process's share of a data-parallel step (network.h DataParallel;
      // fastmlp.distributed drives it). reduce(partials, out) receives this
      // process's (pieces, width) float64 partial sums (read-only) and
      // writes the global ones into out (width); it runs with the GIL held,
      // between the core's phases, and an exception in it ends the step
      // (which is then not pending).
      .def("forward_backward_pieces",
           [](Net& n, carray<T> x, py::array y, py::object sw, py::object cw, index_t row0,
              index_t rows, double den, std::vector<index_t> bounds, py::function reduce,
              index_t first_piece, index_t total_pieces) {
             Guard::Training claim(n.guard(), "forward_backward_pieces");
             entering(n);
             Batch<T> b;
             if (x.ndim() == 2 && x.shape(0) == 0 && x.shape(1) == n.input_size()) {
               // No rows of this batch here: the process still takes part in
               // the batch-norm sums.
               b.x = x.data();
               b.rows = 0;
             } else {
               load_step_batch(b, n, x, y, sw, cw);
             }
             if (!(den > 0.0))
               throw py::value_error(
                   "den: expected the global batch's positive loss denominator (inf when every "
                   "row weighs 0), got " + std::to_string(den));
             DataParallel dp;
             dp.row0 = row0;
             dp.rows = rows;
             dp.den = den;
             dp.bounds = std::move(bounds);
             if (total_pieces < 0 || first_piece < 0 ||
                 (total_pieces > 0 &&
                  first_piece + index_t(dp.bounds.size()) - 1 > total_pieces))
               throw py::value_error("first_piece, total_pieces: this process's pieces must lie "
                                     "within the batch's");
             dp.first_piece = first_piece;
             dp.total_pieces = total_pieces;
             std::unique_ptr<py::error_already_set> pending;
             dp.reduce = [&](const double* partials, index_t pieces, index_t width,
                             double* total) {
               call_reduce(reduce, partials, pieces, width, total, pending);
             };
             const index_t k = n.output_size();
             const Loss loss = n.loss_kind();
             double correct = 0.0, predictions = 0.0;
             std::vector<double> losses;
             try {
               losses = pass(n, [&] {
                 std::vector<double> out = n.forward_backward_pieces(b.x, b.t, b.rows, dp);
                 const T* p = n.workspace().layer(n.num_layers() - 1).y;
                 if (loss == Loss::cross_entropy) {
                   for (index_t i = 0; i < b.rows; ++i) {
                     const T* row = p + i * k;
                     const index_t pred = index_t(std::max_element(row, row + k) - row);
                     const index_t truth =
                         b.t.labels ? index_t(b.t.labels[i])
                                    : index_t(std::max_element(b.t.dense + i * k,
                                                               b.t.dense + (i + 1) * k) -
                                              (b.t.dense + i * k));
                     correct += pred == truth;
                   }
                   predictions = double(b.rows);
                 } else if (loss == Loss::binary_cross_entropy) {
                   for (index_t i = 0; i < b.rows * k; ++i)
                     correct += (p[i] > T(0.5)) == (b.t.dense[i] > T(0.5));
                   predictions = double(b.rows * k);
                 }
                 return out;
               });
             } catch (...) {
               if (pending) throw *pending;
               throw;
             }
             py::dict r;
             r["losses"] = py::array_t<double>(py::ssize_t(losses.size()), losses.data());
             r["correct"] = correct;
             r["predictions"] = predictions;
             return r;
           },
           "X"_a.noconvert(), "y"_a, "sample_weight"_a, "class_weight"_a, "row0"_a, "rows"_a,
           "den"_a, "bounds"_a, "reduce"_a, "first_piece"_a = 0, "total_pieces"_a = 0)
      // Views of the gradient buffers of pieces 1, 2, ... of the last
      // forward_backward_pieces (piece 0's is grads_flat()).
      .def("piece_grads",
           [](py::object self) {
             Net& n = net_of<T>(self);
             const index_t P = n.parameters().size();
             py::list out;
             for (index_t q = 1; q <= n.piece_grad_count(); ++q)
               out.append(view<T>(self, n.piece_grad(q), {P}));
             return out;
           })
      .def("grads_flat",
           [](py::object self) {
             Net& n = net_of<T>(self);
             return view<T>(self, n.parameters().grads(), {n.parameters().size()});
           })
      .def("train_epoch",
           [](Net& n, carray<T> x, py::array y, std::optional<carray<int64_t>> perm,
              index_t batch_size, index_t start, index_t max_batches, py::object sw, py::object cw,
              bool check_signals, std::optional<EpochResult> carry) {
             Guard::Training claim(n.guard(), "train_epoch");
             entering(n);
             Batch<T> b;
             load_batch(b, n, x, y, sw, cw);
             const index_t rows = b.rows;
             if (batch_size <= 0) throw py::value_error("batch_size: must be a positive integer");
             if (start < 0) throw py::value_error("start: must be >= 0");
             const int64_t* pp = nullptr;
             if (perm) {
               pp = require<int64_t>(*perm, "perm", {rows});
               // Only the entries this call reads (its batches and the next
               // one's prefetch): fit calls once per chunk of an epoch, and
               // checking the whole permutation each time would cost O(rows)
               // per chunk.
               const index_t bs = std::min(batch_size, rows);
               const index_t end =
                   max_batches < 0 ? rows : std::min(rows, start + (max_batches + 1) * bs);
               if (start < end) {
                 const ValueScan s = scan_values(pp + start, std::size_t(end - start));
                 if (s.lo < 0 || s.hi >= double(rows))
                   throw py::value_error("perm: index out of range");
               }
             }
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
             // carry: the result a previous call returned for the same epoch.
             // Its sums continue here, so a chunked epoch adds the same
             // numbers in the same order as a whole one (bitwise equal loss
             // and norms).
             EpochResult r = carry ? continued(*carry) : EpochResult{};
             if (r.grad_norm_sum.size() > std::size_t(n.num_layers()))
               throw py::value_error("carry: grad_norm_sum has more entries than layers");
             pass(n, [&] {
               train_epoch(n, b.x, b.t, rows, pp, batch_size, start, max_batches, poll, r);
             });
             if (pending) throw *pending;
             return r;
           },
           "X"_a.noconvert(), "y"_a, "perm"_a.noconvert(), "batch_size"_a, "start"_a = 0,
           "max_batches"_a = -1, "sample_weight"_a = py::none(), "class_weight"_a = py::none(),
           "check_signals"_a = true, "carry"_a = py::none())
      .def("grad_norms",
           [](const Net& n) {
             return pass(n, [&] {
               std::vector<double> v;
               for (index_t l = 0; l < n.num_layers(); ++l)
                 v.push_back(std::sqrt(n.trainer().grad_sumsq(l)));
               return v;
             });
           })
      .def("progress",
           [](const Net& n) {
             // Read while train_epoch runs in another thread (the GIL is
             // released there): batches, rows and loss sum of the running
             // epoch so far. Only atomics are read; no lock is taken.
             const EpochProgress& p = n.trainer().progress();
             const int64_t batches = p.batches.load(std::memory_order_acquire);
             return py::make_tuple(batches, p.rows.load(std::memory_order_relaxed),
                                   p.loss_sum.load(std::memory_order_relaxed));
           })
      .def("reset_progress", [](Net& n) { n.trainer().progress().publish(EpochResult{}); })
      .def("reset_unit_activity",
           [](Net& n) {
             Guard::Training claim(n.guard(), "reset_unit_activity");
             pass(n, [&] { n.trainer().reset_unit_activity(); });
           })
      .def("dead_fraction",
           [](const Net& n, index_t l) {
             check_layer(l, n.num_layers());
             return pass(n, [&] { return n.trainer().dead_fraction(l); });
           },
           "layer"_a)
      .def("layer_state",
           [](Net& n, index_t l) {
             // Copies of layer l's z, y and d after the last forward/backward.
             check_layer(l, n.num_layers());
             const index_t k = n.layer(l).out;
             // Copied under the pass mutex (another thread's pass would
             // overwrite the workspace), then handed to NumPy.
             std::vector<T> z, y, d;
             const index_t rows = pass(n, [&] {
               const LayerBuffers<T>& w = n.workspace().layer(l);
               const index_t r = n.workspace().last_rows;
               auto take = [&](std::vector<T>& v, const T* p) {
                 v.assign(std::size_t(r * k), T(0));
                 if (p) std::copy(p, p + r * k, v.data());
               };
               take(z, w.z);
               take(y, w.y);
               take(d, w.d);
               return r;
             });
             auto array = [&](const std::vector<T>& v) {
               carray<T> a({rows, k});
               std::copy(v.begin(), v.end(), a.mutable_data());
               return a;
             };
             py::dict out;
             out["z"] = array(z);
             out["y"] = array(y);
             out["d"] = array(d);
             return out;
           },
           "layer"_a)
      .def("set_optimizer",
           [](Net& n, const OptConfig& c) {
             Guard::Training claim(n.guard(), "set_optimizer");
             pass(n, [&] { n.trainer().set_optimizer(c); });
           },
           "config"_a)
      .def("optimizer_config", [](const Net& n) { return n.trainer().optimizer(); })
      .def("set_lr",
           [](Net& n, double lr) {
             Guard::Training claim(n.guard(), "set_lr");
             pass(n, [&] { n.trainer().set_lr(lr); });
           },
           "lr"_a)
      .def_property(
          "optimizer_steps", [](const Net& n) { return n.trainer().optimizer_steps(); },
          [](Net& n, int64_t s) {
            Guard::Training claim(n.guard(), "optimizer_steps");
            pass(n, [&] { n.trainer().set_optimizer_steps(s); });
          })
      .def("set_regularization",
           [](Net& n, double l1, double l2, double clip_value, double clip_norm) {
             Guard::Training claim(n.guard(), "set_regularization");
             pass(n, [&] {
               n.trainer().set_regularization(Regularization{l1, l2, clip_value, clip_norm});
             });
           },
           "l1"_a = 0.0, "l2"_a = 0.0, "clip_value"_a = 0.0, "clip_norm"_a = 0.0)
      .def_property(
          "bf16_gemm",
          [](const Net& n) { return n.gemm_precision() == GemmPrecision::bf16; },
          [](Net& n, bool on) {
            Guard::Training claim(n.guard(), "bf16_gemm");
            const GemmPrecision prec = on ? GemmPrecision::bf16 : GemmPrecision::native;
            pass(n, [&] { n.set_gemm_precision(prec); });
          },
          "The three GEMMs per layer on bf16-rounded operands with float32 sums "
          "(mixed_bfloat16); Network64 refuses it (ValueError).")
      .def_property(
          "bf16_input_panels", [](const Net& n) { return n.input_panels(); },
          [](Net& n, bool on) {
            Guard::Training claim(n.guard(), "bf16_input_panels");
            pass(n, [&] { n.set_input_panels(on); });
          },
          "mixed_bfloat16: each layer's output is also written, by its forward "
          "product's epilogue, as the next layer's bf16 weight-gradient operand "
          "(default True; False packs it in that product instead, with the same "
          "values: a switch for tests and benchmarks).")
      .def_property(
          "step_count", [](const Net& n) { return n.trainer().step_count(); },
          [](Net& n, int64_t s) {
            Guard::Training claim(n.guard(), "step_count");
            pass(n, [&] { n.trainer().set_step_count(s); });
          });
}

}  // namespace

void bind_networks(py::module_& m) {
  bind_network<float>(m, "Network32");
  bind_network<double>(m, "Network64");
}

}  // namespace fastmlp::bind
