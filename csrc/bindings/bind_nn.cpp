// Bindings of the dropout and batch-norm kernels (csrc/nn/dropout.h,
// csrc/nn/batchnorm.h), for fm.ops and the tests.
//
// Each function takes NumPy arrays as plain objects and checks them itself,
// so that a wrong dtype, a non-contiguous array or a bad shape is reported
// as TypeError/ValueError naming the argument (pybind11's overload
// resolution would only say that no overload matched). The dtype of the
// first array picks float32 or float64; every other array must have it.
// Outputs are allocated with the GIL held; kernels run with it released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "nn/batchnorm.h"
#include "nn/dropout.h"

namespace fastmlp::bind {

using namespace pybind11::literals;

namespace {

std::string type_name(const py::handle& h) { return py::str(py::type::of(h).attr("__name__")); }

bool is_float64(const py::handle& a, const char* name) {
  if (!py::isinstance<py::array>(a))
    throw py::type_error(std::string(name) + ": expected a numpy array, got " + type_name(a));
  const py::dtype dt = py::reinterpret_borrow<py::array>(a).dtype();
  if (dt.equal(py::dtype::of<float>())) return false;
  if (dt.equal(py::dtype::of<double>())) return true;
  throw py::type_error(std::string(name) + ": expected a float32 or float64 array, got dtype " +
                       std::string(py::str(dt)));
}

// `a` as a C-contiguous array of T, without a copy; `like` names the array
// whose dtype it must share.
template <class T>
carray<T> take(const py::handle& a, const char* name, const char* like) {
  if (!py::isinstance<py::array>(a))
    throw py::type_error(std::string(name) + ": expected a numpy array, got " + type_name(a));
  const py::array arr = py::reinterpret_borrow<py::array>(a);
  if (!arr.dtype().equal(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + ": expected dtype " + dtype_name<T>() +
                         " (the dtype of " + like + "), got " + std::string(py::str(arr.dtype())));
  if (!(arr.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
  return py::reinterpret_borrow<carray<T>>(a);
}

// A Python int (or anything with __index__) in [0, max], as uint64.
uint64_t as_uint(const py::handle& v, const char* name, uint64_t max) {
  if (PyBool_Check(v.ptr()) || !PyIndex_Check(v.ptr()))
    throw py::type_error(std::string(name) + ": expected an int, got " + type_name(v));
  const py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(v.ptr()));
  if (!i) throw py::error_already_set();
  const std::string range = "[0, " + std::to_string(max) + "]";
  if (i < py::int_(0))
    throw py::value_error(std::string(name) + ": expected an int in " + range + ", got " +
                          std::string(py::str(i)));
  const unsigned long long u = PyLong_AsUnsignedLongLong(i.ptr());
  if (PyErr_Occurred() || u > max) {
    PyErr_Clear();
    throw py::value_error(std::string(name) + ": expected an int in " + range + ", got " +
                          std::string(py::str(i)));
  }
  return uint64_t(u);
}

template <class T>
void dropout_mask_t(const py::handle& out_obj, double p, uint64_t seed, uint64_t step,
                    uint32_t layer, index_t first) {
  carray<T> out = take<T>(out_obj, "out", "out");
  const index_t count = out.ndim() == 1 ? out.shape(0) : -1;
  T* o = require_mut<T>(out, "out", {count});
  py::gil_scoped_release nogil;
  dropout_mask<T>(o, count, p, seed, step, layer, first);
}

template <class T>
py::array apply_mask_t(const py::handle& x_obj, const py::handle& mask_obj) {
  carray<T> x = take<T>(x_obj, "x", "x"), mask = take<T>(mask_obj, "mask", "x");
  if (mask.ndim() != x.ndim() || !std::equal(x.shape(), x.shape() + x.ndim(), mask.shape()))
    throw py::value_error("mask: expected shape " + shape_str(x) + " (the shape of x), got " +
                          shape_str(mask));
  carray<T> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  T* yp = y.mutable_data();
  const T *xp = x.data(), *mp = mask.data();
  const index_t count = x.size();
  py::gil_scoped_release nogil;
  apply_mask<T>(yp, xp, mp, count);
  return y;
}

template <class T>
py::tuple bn_forward_train_t(const py::handle& x_obj, const py::handle& gamma_obj,
                             const py::handle& beta_obj, double eps) {
  carray<T> x = take<T>(x_obj, "x", "x");
  carray<T> gamma = take<T>(gamma_obj, "gamma", "x"), beta = take<T>(beta_obj, "beta", "x");
  require<T>(x, "x", {-1, -1});
  const index_t n = x.shape(0), f = x.shape(1);
  if (n < 1) throw py::value_error("x: expected at least one row, got shape " + shape_str(x));
  const T* g = require<T>(gamma, "gamma", {f});
  const T* b = require<T>(beta, "beta", {f});
  carray<T> y({n, f}), xhat({n, f}), mean({f}), var({f}), invstd({f});
  T *yp = y.mutable_data(), *hp = xhat.mutable_data(), *mp = mean.mutable_data(),
    *vp = var.mutable_data(), *ip = invstd.mutable_data();
  const T* xp = x.data();
  {
    py::gil_scoped_release nogil;
    batchnorm_forward_train<T>(xp, n, f, g, b, eps, hp, yp, mp, vp, ip);
  }
  return py::make_tuple(y, xhat, mean, var, invstd);
}

template <class T>
void bn_update_running_t(const py::handle& rm_obj, const py::handle& rv_obj,
                         const py::handle& mean_obj, const py::handle& var_obj, index_t n,
                         double momentum) {
  carray<T> rm = take<T>(rm_obj, "running_mean", "running_mean");
  carray<T> rv = take<T>(rv_obj, "running_var", "running_mean");
  carray<T> mean = take<T>(mean_obj, "mean", "running_mean");
  carray<T> var = take<T>(var_obj, "var", "running_mean");
  require<T>(rm, "running_mean", {-1});
  const index_t f = rm.shape(0);
  T* rmp = require_mut<T>(rm, "running_mean", {f});
  T* rvp = require_mut<T>(rv, "running_var", {f});
  const T* mp = require<T>(mean, "mean", {f});
  const T* vp = require<T>(var, "var", {f});
  py::gil_scoped_release nogil;
  batchnorm_update_running<T>(rmp, rvp, mp, vp, n, f, momentum);
}

template <class T>
py::array bn_forward_eval_t(const py::handle& x_obj, const py::handle& gamma_obj,
                            const py::handle& beta_obj, const py::handle& rm_obj,
                            const py::handle& rv_obj, double eps) {
  carray<T> x = take<T>(x_obj, "x", "x");
  carray<T> gamma = take<T>(gamma_obj, "gamma", "x"), beta = take<T>(beta_obj, "beta", "x");
  carray<T> rm = take<T>(rm_obj, "running_mean", "x"), rv = take<T>(rv_obj, "running_var", "x");
  require<T>(x, "x", {-1, -1});
  const index_t n = x.shape(0), f = x.shape(1);
  const T* g = require<T>(gamma, "gamma", {f});
  const T* b = require<T>(beta, "beta", {f});
  const T* rmp = require<T>(rm, "running_mean", {f});
  const T* rvp = require<T>(rv, "running_var", {f});
  for (index_t j = 0; j < f; ++j)
    if (!(rvp[j] >= T(0)))
      throw py::value_error("running_var: expected values >= 0, got " + std::to_string(double(rvp[j])) +
                            " at index " + std::to_string(j));
  carray<T> y({n, f});
  T* yp = y.mutable_data();
  const T* xp = x.data();
  {
    py::gil_scoped_release nogil;
    batchnorm_forward_eval<T>(xp, n, f, g, b, rmp, rvp, eps, yp);
  }
  return y;
}

template <class T>
py::tuple bn_backward_t(const py::handle& dy_obj, const py::handle& xhat_obj,
                        const py::handle& gamma_obj, const py::handle& invstd_obj) {
  carray<T> dy = take<T>(dy_obj, "dy", "dy"), xhat = take<T>(xhat_obj, "xhat", "dy");
  carray<T> gamma = take<T>(gamma_obj, "gamma", "dy"), invstd = take<T>(invstd_obj, "invstd", "dy");
  require<T>(dy, "dy", {-1, -1});
  const index_t n = dy.shape(0), f = dy.shape(1);
  if (n < 1) throw py::value_error("dy: expected at least one row, got shape " + shape_str(dy));
  const T* hp = require<T>(xhat, "xhat", {n, f});
  const T* gp = require<T>(gamma, "gamma", {f});
  const T* ip = require<T>(invstd, "invstd", {f});
  carray<T> dx({n, f}), dgamma({f}), dbeta({f});
  T *dxp = dx.mutable_data(), *dgp = dgamma.mutable_data(), *dbp = dbeta.mutable_data();
  const T* dyp = dy.data();
  {
    py::gil_scoped_release nogil;
    batchnorm_backward<T>(dyp, hp, gp, ip, n, f, dxp, dgp, dbp);
  }
  return py::make_tuple(dx, dgamma, dbeta);
}

double check_eps(double eps) {
  if (!(std::isfinite(eps) && eps >= 0.0))
    throw py::value_error("eps: expected a finite number >= 0, got " + std::to_string(eps));
  return eps;
}

}  // namespace

void bind_nn(py::module_& m) {
  m.def(
      "dropout_mask",
      [](const py::object& out, double p, const py::object& seed, const py::object& step,
         const py::object& layer, index_t first) {
        const bool f64 = is_float64(out, "out");
        if (first < 0 || first > (index_t(1) << 40))
          throw py::value_error("first: expected 0 <= first <= 2**40, got " +
                                std::to_string(first));
        if (!(p >= 0.0 && p < 1.0))
          throw py::value_error("p: expected 0 <= p < 1, got " + std::to_string(p));
        const uint64_t s = as_uint(seed, "seed", ~uint64_t(0));
        const uint64_t st = as_uint(step, "step", ~uint64_t(0));
        // The layer shares the third counter word with the stream id (low 8 bits).
        const uint32_t l = uint32_t(as_uint(layer, "layer", (uint64_t(1) << 24) - 1));
        if (f64)
          dropout_mask_t<double>(out, p, s, st, l, first);
        else
          dropout_mask_t<float>(out, p, s, st, l, first);
      },
      "out"_a, "p"_a, "seed"_a, "step"_a, "layer"_a, "first"_a = 0,
      "Fill the 1-D float32/float64 array `out` with the inverted-dropout mask of "
      "(seed, step, layer): 0 or 1/(1 - p) per element, for elements first, first + 1, ... "
      "of the layer's output.");

  m.def(
      "apply_mask",
      [](const py::object& x, const py::object& mask) {
        return is_float64(x, "x") ? apply_mask_t<double>(x, mask) : apply_mask_t<float>(x, mask);
      },
      "x"_a, "mask"_a, "x * mask, element by element (the dropout forward and backward).");

  m.def(
      "batchnorm_forward_train",
      [](const py::object& x, const py::object& gamma, const py::object& beta, double eps) {
        check_eps(eps);
        return is_float64(x, "x") ? bn_forward_train_t<double>(x, gamma, beta, eps)
                                  : bn_forward_train_t<float>(x, gamma, beta, eps);
      },
      "x"_a, "gamma"_a, "beta"_a, "eps"_a,
      "Training forward over the rows of x (n, f): returns (y, xhat, mean, var, invstd), var "
      "the biased batch variance.");

  m.def(
      "batchnorm_update_running",
      [](const py::object& running_mean, const py::object& running_var, const py::object& mean,
         const py::object& var, index_t n, double momentum) {
        if (n < 2)
          throw py::value_error("n: expected at least 2 rows (the unbiased variance divides by "
                                "n - 1), got " + std::to_string(n));
        if (!(momentum >= 0.0 && momentum <= 1.0))
          throw py::value_error("momentum: expected 0 <= momentum <= 1, got " +
                                std::to_string(momentum));
        if (is_float64(running_mean, "running_mean"))
          bn_update_running_t<double>(running_mean, running_var, mean, var, n, momentum);
        else
          bn_update_running_t<float>(running_mean, running_var, mean, var, n, momentum);
      },
      "running_mean"_a, "running_var"_a, "mean"_a, "var"_a, "n"_a, "momentum"_a,
      "Update running_mean and running_var in place from a batch of n rows.");

  m.def(
      "batchnorm_forward_eval",
      [](const py::object& x, const py::object& gamma, const py::object& beta,
         const py::object& running_mean, const py::object& running_var, double eps) {
        check_eps(eps);
        return is_float64(x, "x")
                   ? bn_forward_eval_t<double>(x, gamma, beta, running_mean, running_var, eps)
                   : bn_forward_eval_t<float>(x, gamma, beta, running_mean, running_var, eps);
      },
      "x"_a, "gamma"_a, "beta"_a, "running_mean"_a, "running_var"_a, "eps"_a,
      "Eval forward from the running statistics: returns y (n, f).");

  m.def(
      "batchnorm_backward",
      [](const py::object& dy, const py::object& xhat, const py::object& gamma,
         const py::object& invstd) {
        return is_float64(dy, "dy") ? bn_backward_t<double>(dy, xhat, gamma, invstd)
                                    : bn_backward_t<float>(dy, xhat, gamma, invstd);
      },
      "dy"_a, "xhat"_a, "gamma"_a, "invstd"_a,
      "Backward of the training forward: returns (dx, dgamma, dbeta).");
}

}  // namespace fastmlp::bind
