// Array checks for the bindings. The Python layer converts input once
// (fastmlp._validation); these checks are the second line that keeps a wrong
// array from ever being mis-read by the core. They raise ValueError/TypeError
// naming the argument, what was expected and what was received.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <initializer_list>
#include <string>

#include "common/types.h"

namespace fastmlp::bind {

namespace py = pybind11;

template <class T>
using carray = py::array_t<T, py::array::c_style>;

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

template <class T>
T* require_mut(carray<T>& a, const char* name, std::initializer_list<index_t> dims) {
  require<T>(a, name, dims);
  if (!a.writeable()) throw py::value_error(std::string(name) + ": array is read-only");
  return a.mutable_data();
}

template <class T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

}  // namespace fastmlp::bind
