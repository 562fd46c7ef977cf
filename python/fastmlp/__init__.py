"""fastmlp: fast, exact training of dense feed-forward networks on the CPU.

::

    import fastmlp as fm
    model = fm.MLP([64, 32, 10], activation="relu", loss="cross_entropy")
    model.compile(optimizer=fm.optim.SGD(lr=0.1))
    history = model.fit(X, y, epochs=20, batch_size=32)
    model.predict(X)
"""

from __future__ import annotations

import os

from . import _core, callbacks, datasets, io, ops, optim, reference
from .callbacks import Callback, EarlyStopping, History
from .model import MLP, load
from .plotting import plot_history
from .layers import Dense, Layer

__version__ = _core.__version__

# threadpoolctl (and so joblib's workers) can see and limit fastmlp's threads.
from ._threadpool import register as _register_threadpool  # noqa: E402

_register_threadpool()

__all__ = [
    "MLP",
    "MLPClassifier",
    "MLPRegressor",
    "Callback",
    "Dense",
    "EarlyStopping",
    "History",
    "Layer",
    "callbacks",
    "datasets",
    "load",
    "get_num_threads",
    "ops",
    "optim",
    "plot_history",
    "reference",
    "set_num_threads",
    "show_config",
]


def __getattr__(name: str):
    # The scikit-learn estimators import sklearn (an optional dependency):
    # loaded on first use, so `import fastmlp` works without it.
    if name in ("MLPClassifier", "MLPRegressor", "estimators"):
        import importlib

        module = importlib.import_module(".estimators", __name__)
        return module if name == "estimators" else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def set_num_threads(n: int) -> None:
    """Set the number of threads the core may use (it uses fewer on small problems).

    Affects fastmlp only, not NumPy or other OpenMP code in the process.
    Results do not depend on it: every reduction runs in a fixed order.
    ``threadpoolctl.threadpool_limits`` changes the same setting.

    Parameters
    ----------
    n : int
        A positive thread count.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n: expected a positive integer, got {n!r}")
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads the core may use (see :func:`set_num_threads`).

    Returns
    -------
    int
        The thread count.
    """
    return _core.get_num_threads()


def show_config() -> dict:
    """What this build and this machine use.

    Returns
    -------
    dict
        ``version``; ``compiler``; ``openmp`` (whether the core was built
        with OpenMP); ``isa``, the GEMM path in use ("avx512", "avx2" or
        "generic", chosen from cpuid at import unless ``FASTMLP_ISA`` names
        one); ``isa_supported``, the paths this CPU runs; ``bf16_isa``, the
        bf16 GEMM kernel in use ("avx512_bf16" or the portable "generic");
        ``bf16_instructions``, whether this CPU runs AVX512-BF16;
        ``num_threads``; ``cpu_count``.
    """
    return {
        "version": __version__,
        "compiler": _core.compiler,
        "openmp": bool(_core.have_openmp()),
        "isa": _core.gemm_kernel(),
        "isa_supported": list(_core.supported_isas()),
        "bf16_isa": _core.bf16_kernel(),
        "bf16_instructions": bool(_core.have_bf16_instructions()),
        "num_threads": _core.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
