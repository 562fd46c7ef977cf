// Array checks for the bindings. The Python layer converts input once
// (fastmlp._validation); these checks are the second line that keeps a wrong
// array from ever being mis-read by the core. They raise ValueError/TypeError
// naming the argument, what was expected and what was received.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <string>
#include <type_traits>

#include "common/types.h"

namespace fastmlp::bind {

namespace py = pybind11;

template <class T>
using carray = py::array_t<T, py::array::c_style>;

// The shortest of the %.{1..17}g texts that read back as v ("-1", "-10",
// "0.1", "-1e+15", "inf"; "nan" whatever its sign bit), as Python's
// fastmlp._validation.num_str writes it, so both sides give one message.
inline std::string num_str(double v) {
  if (std::isnan(v)) return "nan";
  std::string best;
  char buf[40];
  for (int prec = 1; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v && (best.empty() || std::strlen(buf) < best.size()))
      best = buf;
  }
  return best;
}

// A loss-weight entry that is not finite and >= 0 (the message of
// fastmlp._validation.check_loss_weights).
inline py::value_error bad_weight(const char* name, double v, index_t i) {
  return py::value_error(std::string(name) + ": weights must be finite and >= 0, got " +
                         num_str(v) + " at index " + std::to_string(i));
}

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

inline std::string shape_str(std::initializer_list<index_t> dims) {
  std::string s = "(";
  int i = 0;
  for (index_t d : dims) {
    if (i++) s += ", ";
    s += d < 0 ? std::string("any") : std::to_string(d);
  }
  if (dims.size() == 1) s += ",";
  return s + ")";
}

// Checks ndim and every dimension that is not -1; returns the data pointer.
template <class T>
const T* require(const carray<T>& a, const char* name, std::initializer_list<index_t> dims) {
  bool ok = a.ndim() == py::ssize_t(dims.size());
  if (ok) {
    int i = 0;
    for (index_t d : dims) {
      if (d >= 0 && a.shape(i) != d) ok = false;
      ++i;
    }
  }
  if (!ok)
    throw py::value_error(std::string(name) + ": expected shape " + shape_str(dims) + ", got " +
                          shape_str(a));
  return a.data();
}

// A matrix of any shape, refused with fm.ops' rank message ("a: expected a
// 2-D array, got shape (3,)"), which the Python wrappers give for array-likes.
template <class T>
const T* require_2d(const carray<T>& a, const char* name) {
  if (a.ndim() != 2)
    throw py::value_error(std::string(name) + ": expected a 2-D array, got shape " + shape_str(a));
  return a.data();
}

template <class T>
T* require_mut(carray<T>& a, const char* name, std::initializer_list<index_t> dims) {
  require<T>(a, name, dims);
  if (!a.writeable()) throw py::value_error(std::string(name) + ": array is read-only");
  return a.mutable_data();
}

// (all finite, min, max) of p[0..n) in one pass; the value checks of every
// entry point (the Python layer's through _core.scan, the core's own on
// train_step's batches) are built on it. kRange = false: finiteness only.
// Floating min/max skip NaN; with no (non-NaN) element they are (inf, -inf).
// 16 independent lanes give the compiler a loop it vectorizes (one running
// min over all elements is a serial chain); infinity and NaN are told by
// their all-ones exponent with an integer OR, which vectorizes too.
struct ValueScan {
  bool finite;
  double lo, hi;
};

template <class T, bool kRange = true>
ValueScan scan_values(const T* p, std::size_t n) {
  constexpr int kLanes = 16;
  constexpr bool kFloat = std::is_floating_point_v<T>;
  using U = std::conditional_t<sizeof(T) == 8, uint64_t, uint32_t>;
  constexpr U kExp = sizeof(T) == 8 ? U(0x7ff0000000000000ull) : U(0x7f800000u);
  T mn[kLanes], mx[kLanes];
  U bad[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    mn[l] = kFloat ? std::numeric_limits<T>::infinity() : std::numeric_limits<T>::max();
    mx[l] = kFloat ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::lowest();
    bad[l] = 0;
  }
  auto visit = [&](int l, T v) {
    if constexpr (kFloat) {
      U bits;
      std::memcpy(&bits, &v, sizeof v);
      bad[l] |= U((bits & kExp) == kExp);
    }
    if constexpr (kRange) {
      mn[l] = v < mn[l] ? v : mn[l];
      mx[l] = v > mx[l] ? v : mx[l];
    }
  };
  std::size_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) visit(l, p[i + l]);
  for (int l = 0; i < n; ++i, ++l) visit(l, p[i]);
  ValueScan r{true, HUGE_VAL, -HUGE_VAL};
  for (int l = 0; l < kLanes; ++l) {
    r.finite = r.finite && bad[l] == 0;
    if (!kRange || std::size_t(l) >= n) continue;  // a lane that saw nothing
    r.lo = std::min(r.lo, double(mn[l]));
    r.hi = std::max(r.hi, double(mx[l]));
  }
  return r;
}

template <class T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

// Loss weights: None (all ones: returns nullptr), or a C-contiguous 1-D
// array of T with `len` finite entries >= 0, one per `per` (for the
// message). The core trusts these, so every binding that takes them checks
// them here, once, while the GIL is held; the messages are those of
// fastmlp._validation.check_loss_weights where the two check the same thing.
template <class T>
const T* loss_weights(const py::object& obj, const char* name, index_t len, const char* per) {
  if (obj.is_none()) return nullptr;
  const std::string nm(name);
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(nm + ": expected a numpy array of " + dtype_name<T>() + " or None, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  const auto a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().equal(py::dtype::of<T>()))
    throw py::type_error(nm + ": expected dtype " + dtype_name<T>() + ", got " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != 1 || a.shape(0) != len)
    throw py::value_error(nm + ": expected shape (" + std::to_string(len) + ",), one weight per " +
                          per + ", got " + shape_str(a));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(nm + ": expected a C-contiguous array");
  const T* p = static_cast<const T*>(a.data());
  for (index_t i = 0; i < len; ++i)
    if (!(std::isfinite(p[i]) && p[i] >= T(0)))  // also refuses NaN, which fails every compare
      throw bad_weight(name, double(p[i]), i);
  return p;
}

}  // namespace fastmlp::bind
