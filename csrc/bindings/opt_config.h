// Conversion of a Python dict of optimizer hyper-parameters (as produced by
// fastmlp.optim.<Optimizer>._core_config()) into the core's OptConfig.
#pragma once

#include <pybind11/pybind11.h>

#include "optim/optimizer.h"

namespace fastmlp::bind {

// Keys: "kind" (int, OptKind) and any OptConfig field by name; unknown keys
// raise ValueError naming them; values are validated (fastmlp::validate).
OptConfig opt_config_from_dict(const pybind11::dict& d);

// The inverse, for save/load and introspection.
pybind11::dict opt_config_to_dict(const OptConfig& cfg);

}  // namespace fastmlp::bind
