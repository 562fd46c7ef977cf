// fm.ops / fm.reference-mirrored kernels, one binding per C++ kernel, for
// tests and benchmarks. Outputs are allocated while the GIL is held; the
// computation runs with it released.
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

#include "bindings/arrays.h"
#include "common/parallel.h"
#include "gemm/gemm.h"
#include "network/network.h"
#include "nn/activations.h"
#include "nn/dense.h"
#include "nn/losses.h"

namespace fastmlp::bind {

using namespace pybind11::literals;

namespace {

// C = op(a) op(b), checked and shaped for run(TA, TB, m, n, k, A, lda, B, ldb,
// C, ldc), which runs with the GIL released: the one binding of every
// GEMM flavour (float, double, bf16 operands, the naive reference).
template <class T, class Run>
carray<T> bound_matmul(carray<T> a, carray<T> b, bool ta, bool tb,
                       std::optional<carray<T>> out, Run run) {
  // fm.ops.matmul hands arrays straight here (its conversions run only when
  // matmul_direct refuses the arguments), so the rank messages are its own.
  const T* ap = require_2d<T>(a, "a");
  const T* bp = require_2d<T>(b, "b");
  const index_t m_ = ta ? a.shape(1) : a.shape(0), ka = ta ? a.shape(0) : a.shape(1);
  const index_t kb = tb ? b.shape(1) : b.shape(0), n_ = tb ? b.shape(0) : b.shape(1);
  if (ka != kb)
    throw py::value_error("b: inner dimensions differ: op(a) is " + std::to_string(m_) + "x" +
                          std::to_string(ka) + ", op(b) is " + std::to_string(kb) + "x" +
                          std::to_string(n_));
  carray<T> c = out ? *out : carray<T>({m_, n_});
  T* cp = require_mut<T>(c, "out", {m_, n_});
  // The kernels read a and b while they write C: an out that shares memory
  // with either would be overwritten while it is still read.
  auto overlaps = [&](const carray<T>& x) {
    const char* c0 = reinterpret_cast<const char*>(cp);
    const char* x0 = reinterpret_cast<const char*>(x.data());
    return x.size() > 0 && c.size() > 0 && c0 < x0 + x.nbytes() && x0 < c0 + c.nbytes();
  };
  if (overlaps(a) || overlaps(b))
    throw py::value_error("out: shares memory with a or b; the product needs a separate array");
  const index_t lda = a.shape(1), ldb = b.shape(1);
  {
    py::gil_scoped_release nogil;
    run(ta ? Trans::T : Trans::N, tb ? Trans::T : Trans::N, m_, n_, ka, ap, lda, bp, ldb, cp, n_);
  }
  return c;
}

// fm.ops.matmul on arrays of one float type: the core's GEMM (or its naive twin).
template <class T>
carray<T> matmul_typed(carray<T> a, carray<T> b, bool ta, bool tb, std::optional<carray<T>> out,
                       bool naive, bool stream) {
  return bound_matmul<T>(a, b, ta, tb, out,
                         [naive, stream](Trans TA, Trans TB, index_t m_, index_t n_, index_t k,
                                         const T* ap, index_t lda, const T* bp, index_t ldb, T* cp,
                                         index_t ldc) {
                           Epilogue<T> hint;
                           hint.stream = stream;
                           if (naive)
                             gemm_naive<T>(TA, TB, m_, n_, k, T(1), ap, lda, bp, ldb, T(0), cp,
                                           ldc);
                           else
                             gemm<T>(TA, TB, m_, n_, k, T(1), ap, lda, bp, ldb, T(0), cp, ldc,
                                     &hint);
                         });
}

// matmul_typed<T> when a, b and out (unless None) are all C-contiguous arrays
// of T; nullopt otherwise, without raising.
template <class T>
std::optional<py::object> matmul_if(py::handle a, py::handle b, bool ta, bool tb, py::handle out,
                                    bool naive) {
  if (!py::isinstance<carray<T>>(a) || !py::isinstance<carray<T>>(b) ||
      !(out.is_none() || py::isinstance<carray<T>>(out)))
    return std::nullopt;
  std::optional<carray<T>> o;
  if (!out.is_none()) o = py::reinterpret_borrow<carray<T>>(out);
  return matmul_typed<T>(py::reinterpret_borrow<carray<T>>(a), py::reinterpret_borrow<carray<T>>(b),
                         ta, tb, o, naive, false);
}

template <class T>
void bind_typed(py::module_& m) {
  m.def("matmul", &matmul_typed<T>, "a"_a.noconvert(), "b"_a.noconvert(), "trans_a"_a = false,
        "trans_b"_a = false, "out"_a.noconvert() = py::none(), "naive"_a = false,
        "stream"_a = false,
        "C = op(a) op(b) (csrc/gemm/gemm.h, gemm); stream: the Epilogue::stream hint (C written "
        "once, stored around the caches where it qualifies; for tests).");

  // gemm_pieces: each group's op(a) op(b) over its pieces of k, added in
  // the tree of PieceSums (stacked, one result per group).
  m.def(
      "matmul_pieces",
      [](carray<T> a, carray<T> b, std::vector<index_t> bounds, index_t first, index_t total,
         bool ta, bool tb) {
        require<T>(a, "a", {-1, -1});
        require<T>(b, "b", {-1, -1});
        const index_t m_ = ta ? a.shape(1) : a.shape(0), ka = ta ? a.shape(0) : a.shape(1);
        const index_t kb = tb ? b.shape(1) : b.shape(0), n_ = tb ? b.shape(0) : b.shape(1);
        if (ka != kb) throw py::value_error("b: inner dimensions differ");
        const index_t pieces = index_t(bounds.size()) - 1;
        if (pieces < 1 || bounds.front() != 0 || bounds.back() != ka)
          throw py::value_error("bounds: expected piece bounds from 0 to k");
        for (index_t q = 0; q < pieces; ++q)
          if (bounds[std::size_t(q + 1)] <= bounds[std::size_t(q)])
            throw py::value_error("bounds: must increase");
        if (first < 0 || (total > 0 && first + pieces > total))
          throw py::value_error("first, total: the pieces must lie within the tree's");
        const std::vector<index_t> groups = piece_tree_groups(pieces, first, total);
        const index_t ng = index_t(groups.size()) - 1;
        carray<T> c({ng, m_, n_});
        std::vector<T*> outs;
        for (index_t g = 0; g < ng; ++g) outs.push_back(c.mutable_data() + g * m_ * n_);
        PieceSums<T> ps;
        ps.kb = bounds.data();
        ps.pieces = pieces;
        ps.first = first;
        ps.groups = groups.data();
        ps.n_groups = ng;
        ps.c = outs.data();
        {
          py::gil_scoped_release nogil;
          gemm_pieces<T>(ta ? Trans::T : Trans::N, tb ? Trans::T : Trans::N, m_, n_, a.data(),
                         a.shape(1), b.data(), b.shape(1), n_, ps);
        }
        return py::make_tuple(c, groups);
      },
      "a"_a.noconvert(), "b"_a.noconvert(), "bounds"_a, "first"_a = 0, "total"_a = 0,
      "trans_a"_a = false, "trans_b"_a = false);

  m.def(
      "activation_forward",
      [](carray<T> z, Act a) {
        require<T>(z, "z", {-1, -1});
        const index_t r = z.shape(0), c = z.shape(1);
        carray<T> y({r, c});
        T* yp = y.mutable_data();
        const T* zp = z.data();
        py::gil_scoped_release nogil;
        activation_forward<T>(yp, zp, r, c, a);
        return y;
      },
      "z"_a.noconvert(), "act"_a);

  m.def(
      "activation_backward",
      [](carray<T> dy, carray<T> z, carray<T> y, Act a) {
        require<T>(dy, "dy", {-1, -1});
        const index_t r = dy.shape(0), c = dy.shape(1);
        require<T>(z, "z", {r, c});
        require<T>(y, "y", {r, c});
        carray<T> dz({r, c});
        T* o = dz.mutable_data();
        const T *dyp = dy.data(), *zp = z.data(), *yp = y.data();
        py::gil_scoped_release nogil;
        activation_backward<T>(o, dyp, zp, yp, r, c, a);
        return dz;
      },
      "dy"_a.noconvert(), "z"_a.noconvert(), "y"_a.noconvert(), "act"_a);

  m.def(
      "dense_forward",
      [](carray<T> x, carray<T> w, carray<T> b, Act a) {
        require<T>(w, "w", {-1, -1});
        const index_t out = w.shape(0), in = w.shape(1);
        require<T>(x, "x", {-1, in});
        require<T>(b, "b", {out});
        const index_t n = x.shape(0);
        carray<T> z({n, out}), y({n, out});
        T *zp = z.mutable_data(), *yp = y.mutable_data();
        const T *xp = x.data(), *wp = w.data(), *bp = b.data();
        {
          py::gil_scoped_release nogil;
          dense_forward<T>(zp, yp, xp, wp, bp, n, in, out, a);
        }
        return py::make_tuple(z, y);
      },
      "x"_a.noconvert(), "w"_a.noconvert(), "b"_a.noconvert(), "act"_a);

  m.def(
      "dense_backward",
      [](carray<T> dy, carray<T> x, carray<T> w, carray<T> z, carray<T> y, Act a) {
        require<T>(w, "w", {-1, -1});
        const index_t out = w.shape(0), in = w.shape(1);
        require<T>(x, "x", {-1, in});
        const index_t n = x.shape(0);
        require<T>(dy, "dy", {n, out});
        require<T>(z, "z", {n, out});
        require<T>(y, "y", {n, out});
        carray<T> dx({n, in}), dw({out, in}), db({out}), dz({n, out});
        T *dxp = dx.mutable_data(), *dwp = dw.mutable_data(), *dbp = db.mutable_data(),
          *dzp = dz.mutable_data();
        const T *dyp = dy.data(), *xp = x.data(), *wp = w.data(), *zp = z.data(), *yp = y.data();
        {
          py::gil_scoped_release nogil;
          dense_backward<T>(dxp, dwp, dbp, dzp, dyp, xp, wp, zp, yp, n, in, out, a);
        }
        return py::make_tuple(dx, dw, db, dz);
      },
      "dy"_a.noconvert(), "x"_a.noconvert(), "w"_a.noconvert(), "z"_a.noconvert(),
      "y"_a.noconvert(), "act"_a);

  // loss_output + loss_forward_backward: returns (loss, y, d). Weights are
  // plain objects rather than typed arrays so that a wrong one is named in a
  // ValueError/TypeError of our own instead of failing overload resolution.
  auto loss_fn = [](Loss L, carray<T> z, std::optional<carray<T>> y_in, const T* dense,
                    const int32_t* labels, const py::object& sample_weight,
                    const py::object& class_weight) {
    const index_t n = z.shape(0), k = z.shape(1);
    if ((L == Loss::mse || L == Loss::poisson) && !class_weight.is_none())
      throw py::value_error(std::string("class_weight: not defined for the ") +
                            (L == Loss::mse ? "mse" : "poisson") + " loss (use sample_weight)");
    const index_t nc = L == Loss::binary_cross_entropy ? 2 : k;
    const T* sw = loss_weights<T>(sample_weight, "sample_weight", n, "row of z");
    const T* cw = loss_weights<T>(class_weight, "class_weight", nc,
                                  L == Loss::binary_cross_entropy ? "target value (0 and 1)"
                                                                  : "class (a column of z)");
    carray<T> y({n, k}), d({n, k});
    T *yp = y.mutable_data(), *dp = d.mutable_data();
    const T* zp = z.data();
    const T* yin = y_in ? y_in->data() : nullptr;
    double value;
    {
      py::gil_scoped_release nogil;
      AlignedBuffer<double> rows(n);
      AlignedBuffer<T> tail(n);
      if (L == Loss::mse)
        std::copy(yin, yin + n * k, yp);
      else
        loss_output<T>(L, yp, zp, n, k, tail.data());
      Target<T> t;
      t.dense = dense;
      t.labels = labels;
      t.sample_weight = sw;
      t.class_weight = cw;
      value = loss_forward_backward<T>(L, dp, zp, yp, t, n, k, rows.data(), tail.data());
    }
    return py::make_tuple(value, y, d);
  };
  m.def(
      "loss_forward_backward",
      [loss_fn](Loss loss, carray<T> z, carray<T> y, carray<T> t, py::object sample_weight,
                py::object class_weight) {
        require<T>(z, "z", {-1, -1});
        const index_t n = z.shape(0), k = z.shape(1);
        require<T>(y, "y", {n, k});
        require<T>(t, "target", {n, k});
        return loss_fn(loss, z, y, t.data(), nullptr, sample_weight, class_weight);
      },
      "loss"_a, "z"_a.noconvert(), "y"_a.noconvert(), "target"_a.noconvert(),
      "sample_weight"_a = py::none(), "class_weight"_a = py::none());
  m.def(
      "loss_forward_backward",
      [loss_fn](Loss loss, carray<T> z, carray<T> y, carray<int32_t> labels,
                py::object sample_weight, py::object class_weight) {
        require<T>(z, "z", {-1, -1});
        const index_t n = z.shape(0), k = z.shape(1);
        require<T>(y, "y", {n, k});
        require<int32_t>(labels, "target", {n});
        if (loss != Loss::cross_entropy)
          throw py::value_error("target: class ids are only for cross_entropy");
        for (index_t i = 0; i < n; ++i)
          if (labels.data()[i] < 0 || labels.data()[i] >= k)
            throw py::value_error("target: class id " + std::to_string(labels.data()[i]) +
                                  " out of range [0, " + std::to_string(k) + ")");
        return loss_fn(Loss::cross_entropy, z, y, nullptr, labels.data(), sample_weight,
                       class_weight);
      },
      "loss"_a, "z"_a.noconvert(), "y"_a.noconvert(), "target"_a.noconvert(),
      "sample_weight"_a = py::none(), "class_weight"_a = py::none());
}

// _core.scan for the Python checks (fastmlp._validation._scan): the GIL is
// released for large arrays (a whole training set).
template <class T>
py::tuple scan_array(const py::array& a) {
  const T* p = static_cast<const T*>(a.data());
  const std::size_t n = std::size_t(a.size());
  std::optional<py::gil_scoped_release> nogil;
  if (n > (std::size_t(1) << 16)) nogil.emplace();
  const ValueScan r = scan_values(p, n);
  nogil.reset();
  return py::make_tuple(r.finite, r.lo, r.hi);
}

const char* route_name(ARoute r) {
  switch (r) {
    case ARoute::rows: return "rows";
    case ARoute::kstrided: return "kstrided";
    default: return "packed";
  }
}
const char* route_name(BRoute r) { return r == BRoute::rows ? "rows" : "packed"; }
const char* why_name(PackWhy w) {
  switch (w) {
    case PackWhy::no_direct: return "no_direct";
    case PackWhy::transposed: return "transposed";
    case PackWhy::size: return "size";
    case PackWhy::conflicts: return "conflicts";
    default: return "";
  }
}
const char* order_name(TileOrder o) {
  return o == TileOrder::jr_fastest ? "jr_fastest" : "ir_fastest";
}

// An optional leading dimension: `cols` when None, else at least `cols`.
index_t leading_dim(const std::optional<index_t>& ld, const char* name, index_t cols,
                    const char* what) {
  if (!ld) return cols;
  if (*ld < std::max<index_t>(cols, 1))
    throw py::value_error(std::string(name) + ": expected >= " + std::to_string(cols) + " (" +
                          what + "), got " + std::to_string(*ld));
  return *ld;
}

// _core.gemm_plan: the plan gemm() would follow for this product, as a dict
// (fastmlp.ops.gemm_plan documents the fields). Nothing is computed here but
// the conversion; the plan functions are those of csrc/gemm/gemm.h.
py::dict gemm_plan_dict(index_t m, index_t n, index_t k, bool ta, bool tb,
                        const std::string& dtype, const std::optional<std::string>& isa,
                        std::optional<index_t> lda, std::optional<index_t> ldb,
                        std::optional<index_t> ldc, std::optional<int> threads) {
  if (m < 1 || n < 1 || k < 1)
    throw py::value_error("m, n, k: expected >= 1 (gemm() plans no product otherwise), got " +
                          std::to_string(m) + ", " + std::to_string(n) + ", " +
                          std::to_string(k));
  if (dtype != "float32" && dtype != "float64" && dtype != "bfloat16")
    throw py::value_error("dtype: expected 'float32', 'float64' or 'bfloat16', got '" + dtype +
                          "'");
  if (threads && *threads < 1)
    throw py::value_error("threads: expected a positive number of threads, got " +
                          std::to_string(*threads));
  const bool dbl = dtype == "float64";
  GemmBlocking K;
  try {
    if (dtype == "bfloat16")
      K = gemm_blocking_bf16(isa ? *isa : std::string(bf16_kernel_name()));
    else
      K = gemm_blocking(isa ? *isa : std::string(gemm_kernel_name()), dbl);
  } catch (const std::invalid_argument& e) {
    throw py::value_error(e.what());
  }
  GemmShape s;
  s.ta = ta ? Trans::T : Trans::N;
  s.tb = tb ? Trans::T : Trans::N;
  s.m = m;
  s.n = n;
  s.k = k;
  s.lda = leading_dim(lda, "lda", ta ? m : k, ta ? "m, the columns of a = op(a)^T" : "k, the columns of a");
  s.ldb = leading_dim(ldb, "ldb", tb ? k : n, tb ? "k, the columns of b = op(b)^T" : "n, the columns of b");
  s.ldc = leading_dim(ldc, "ldc", n, "n, the columns of c");
  s.elem_size = dbl ? 8 : 4;
  const GemmPlan P = plan_gemm(s, K, threads ? *threads : num_threads());
  py::list rects;
  for (int t = 0; t < P.threads; ++t) {
    const GemmRect r = plan_thread_rect(P, t);
    if (!(r.i0 < r.i1 && r.j0 < r.j1)) continue;
    GemmShape rs = P.shape;
    rs.m = r.i1 - r.i0;
    rs.n = r.j1 - r.j0;
    const RectPlan R = plan_rect(rs, K, P.narrow, P.swapped);
    py::dict d;
    d["rows"] = py::make_tuple(r.i0, r.i1);
    d["cols"] = py::make_tuple(r.j0, r.j1);
    d["a_route"] = route_name(R.a);
    d["a_why"] = why_name(R.a_why);
    d["b_route"] = route_name(R.b);
    d["b_why"] = why_name(R.b_why);
    d["narrow_edge_nr"] = R.narrow_edge_nr;
    d["tile_order"] = order_name(R.order);
    d["tile_order_last"] = order_name(R.order_last);
    d["transposed_c"] = R.transposed_c;
    rects.append(d);
  }
  py::dict out;
  out["kernel"] = K.name;
  out["dtype"] = dtype;
  out["swapped"] = P.swapped;
  out["narrow"] = P.narrow;
  out["mr"] = P.mr;
  out["nr"] = P.nr;
  out["mc"] = K.mc;
  out["kc"] = K.kc;
  out["nc"] = K.nc;
  out["direct"] = K.direct;
  out["wide_tile"] = py::make_tuple(K.mr, K.nr);
  out["narrow_tile"] = py::make_tuple(K.narrow_mr, K.narrow_nr);
  py::list short_rows;
  for (int r : K.short_mr)
    if (r > 0) short_rows.append(r);
  out["short_rows"] = py::tuple(short_rows);
  out["m"] = P.shape.m;
  out["n"] = P.shape.n;
  out["k"] = P.shape.k;
  out["trans_a"] = P.shape.ta == Trans::T;
  out["trans_b"] = P.shape.tb == Trans::T;
  out["lda"] = P.shape.lda;
  out["ldb"] = P.shape.ldb;
  out["ldc"] = P.shape.ldc;
  out["threads"] = P.threads;
  out["split"] = py::make_tuple(P.tm, P.tn);
  out["row_step"] = P.row_step;
  out["rects"] = rects;
  return out;
}

}  // namespace

void bind_ops(py::module_& m) {
  m.def("gemm_plan", &gemm_plan_dict, "m"_a, "n"_a, "k"_a, "trans_a"_a = false,
        "trans_b"_a = false, "dtype"_a = "float32", "isa"_a = py::none(), "lda"_a = py::none(),
        "ldb"_a = py::none(), "ldc"_a = py::none(), "threads"_a = py::none(),
        "The route gemm() takes for C = op(A) op(B) (see fastmlp.ops.gemm_plan).");
  m.def(
      "scan",
      [](const py::array& a) -> py::object {
        if (!(a.flags() & py::array::c_style)) return py::none();
        const char order = a.dtype().byteorder();
        if (order != '=' && order != '|') return py::none();  // not native: NumPy reads it
        const char kind = a.dtype().kind();
        const auto size = a.dtype().itemsize();
        if (kind == 'f' && size == 4) return scan_array<float>(a);
        if (kind == 'f' && size == 8) return scan_array<double>(a);
        if (kind == 'i' && size == 4) return scan_array<int32_t>(a);
        if (kind == 'i' && size == 8) return scan_array<int64_t>(a);
        if (kind == 'u' && size == 1) return scan_array<uint8_t>(a);
        return py::none();
      },
      py::arg("a"),
      "(all finite, min, max) of a C-contiguous float32/float64/int32/int64/uint8 array in one "
      "pass; None for any other array (the caller falls back to NumPy).");
  bind_typed<float>(m);
  bind_typed<double>(m);
  // fm.ops.matmul's first try: arrays already in the core's form, or None
  // (the caller then converts and checks), never an exception for the form:
  // a refused overload's TypeError formats the arguments' repr, which costs
  // far more than a small product.
  m.def(
      "matmul_direct",
      [](py::handle a, py::handle b, py::handle trans_a, py::handle trans_b, py::handle out,
         py::handle naive) -> py::object {
        // The flags as Python's bool() reads them (as the converting path
        // does), an error in that raised as it is.
        auto truth = [](py::handle h) {
          const int t = PyObject_IsTrue(h.ptr());
          if (t < 0) throw py::error_already_set();
          return t == 1;
        };
        const bool ta = truth(trans_a), tb = truth(trans_b), nv = truth(naive);
        if (auto r = matmul_if<float>(a, b, ta, tb, out, nv)) return *r;
        if (auto r = matmul_if<double>(a, b, ta, tb, out, nv)) return *r;
        return py::none();
      },
      "a"_a, "b"_a, "trans_a"_a, "trans_b"_a, "out"_a, "naive"_a,
      "matmul(a, b, trans_a, trans_b, out, naive) when a, b and out (or None) are C-contiguous "
      "arrays of one float type; None, without raising, for anything else (fm.ops.matmul then "
      "converts).");
  m.def(
      "gemm_pieces_max_k",
      [](bool dbl) { return dbl ? gemm_pieces_max_k<double>() : gemm_pieces_max_k<float>(); },
      "float64"_a);
  m.def(
      "matmul_bf16",
      [](carray<float> a, carray<float> b, bool ta, bool tb, std::optional<carray<float>> out,
         bool stream) {
        return bound_matmul<float>(
            a, b, ta, tb, out,
            [stream](Trans TA, Trans TB, index_t m_, index_t n_, index_t k, const float* ap,
                     index_t lda, const float* bp, index_t ldb, float* cp, index_t ldc) {
              Epilogue<float> hint;
              hint.stream = stream;
              gemm_bf16(TA, TB, m_, n_, k, 1.0f, ap, lda, bp, ldb, 0.0f, cp, ldc, &hint);
            });
      },
      "a"_a.noconvert(), "b"_a.noconvert(), "trans_a"_a = false, "trans_b"_a = false,
      "out"_a.noconvert() = py::none(), "stream"_a = false,
      "C = bf16(op(a)) bf16(op(b)) in float32 (csrc/gemm/gemm.h, gemm_bf16); stream: the "
      "Epilogue::stream hint (for tests).");
  m.def(
      "matmul_bf16_panel",
      [](carray<float> a, carray<float> b, bool ta, bool tb, bool in_blocks) {
        return bound_matmul<float>(
            a, b, ta, tb, std::nullopt,
            [in_blocks](Trans TA, Trans TB, index_t m_, index_t n_, index_t k, const float* ap,
                        index_t lda, const float* bp, index_t ldb, float* cp, index_t ldc) {
              std::vector<std::uint32_t> words(std::size_t(bf16_panel_words(k, n_)), 0xFFFFFFFFu);
              if (!in_blocks) {
                pack_bf16_panel(words.data(), TB, bp, ldb, k, n_, 0, n_, 0, k);
              } else {  // as the optimizer writes it: blocks of 2 slivers x 34 k rows
                const index_t bj = 2 * bf16_panel_nr(), bk = 34;
                for (index_t j0 = 0; j0 < n_; j0 += bj)
                  for (index_t p0 = 0; p0 < k; p0 += bk)
                    pack_bf16_panel(words.data(), TB, bp, ldb, k, n_, j0, std::min(bj, n_ - j0),
                                    p0, std::min(bk, k - p0));
              }
              Bf16Panel panel;
              panel.data = words.data();
              panel.k = k;
              panel.n = n_;
              panel.nr = bf16_panel_nr();
              gemm_bf16_panel(TA, TB, m_, n_, k, 1.0f, ap, lda, bp, ldb, panel, 0.0f, cp, ldc);
            });
      },
      "a"_a.noconvert(), "b"_a.noconvert(), "trans_a"_a = false, "trans_b"_a = false,
      "in_blocks"_a = false,
      "matmul_bf16 with op(b) packed first into a Bf16Panel (whole, or in blocks) and read from "
      "it (csrc/gemm/gemm.h, gemm_bf16_panel); for tests.");
  m.def(
      "round_bf16",
      [](carray<float> x) {
        carray<float> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
        float* yp = y.mutable_data();
        const float* xp = x.data();
        const index_t n = index_t(x.size());
        py::gil_scoped_release nogil;
        round_bf16_array(yp, xp, n);
        return y;
      },
      "x"_a.noconvert(), "float32 holding bf16(x), round to nearest even (common/bf16.h).");
  m.def("permutation", [](index_t n, uint64_t seed, uint32_t epoch) {
    if (n < 0) throw py::value_error("n: must be >= 0");
    carray<int64_t> out({n});
    int64_t* o = out.mutable_data();
    py::gil_scoped_release nogil;
    permutation(o, n, seed, epoch);
    return out;
  }, "n"_a, "seed"_a, "epoch"_a);
}

}  // namespace fastmlp::bind
