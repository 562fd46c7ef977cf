"""fastmlp's thread pool, known to threadpoolctl.

When threadpoolctl is installed (scikit-learn depends on it), importing
fastmlp registers a controller for the compiled core, so that
``threadpoolctl.threadpool_info()`` lists it (internal_api "fastmlp",
user_api "openmp") and ``threadpool_limits(n)`` limits it, as it limits BLAS
and OpenMP libraries. joblib's workers (GridSearchCV(n_jobs=...),
cross_val_score(n_jobs=...)) go through the same mechanism, so a model fitted
inside a worker uses the worker's share of the cores instead of all of them.
The controller reads and writes the setting of fm.set_num_threads through
two plain C symbols of the core (csrc/bindings/module.cpp).
"""

from __future__ import annotations

import ctypes

from . import _core


def register():
    """Register the controller; returns False when threadpoolctl is absent or
    too old to take one."""
    try:
        import threadpoolctl
    except ImportError:
        return False
    if not (hasattr(threadpoolctl, "register") and hasattr(threadpoolctl, "LibController")):
        return False

    class FastmlpController(threadpoolctl.LibController):
        user_api = "openmp"
        internal_api = "fastmlp"
        filename_prefixes = ("_core",)
        check_symbols = ("fastmlp_get_num_threads", "fastmlp_set_num_threads")

        def get_num_threads(self):
            return self.dynlib.fastmlp_get_num_threads()

        def set_num_threads(self, num_threads):
            self.dynlib.fastmlp_set_num_threads(ctypes.c_int(int(num_threads)))

        def get_version(self):
            return _core.__version__

    threadpoolctl.register(FastmlpController)
    return True
