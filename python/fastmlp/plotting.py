"""Pictures of training: loss, accuracy, learning rate and per-layer gradient norms.

::

    history = model.fit(...)
    fm.plot_history(history, "training.png")     # or history.plot("training.png")

matplotlib is an optional dependency (``pip install "fastmlp[plot]"``) and is
imported only when a figure is asked for, so ``import fastmlp`` never pays
for it.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

_INSTALL_HINT = (
    'plot_history needs matplotlib: pip install "fastmlp[plot]" (or pip install matplotlib)'
)


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError(_INSTALL_HINT) from e
    return Figure


def _series(obj):
    """(epochs, {key: values}) from a History, or an object holding one
    (``history_`` / ``history``), or a scikit-learn style estimator
    (``loss_curve_``, ``validation_scores_``)."""
    from .callbacks import History

    if isinstance(obj, History):
        return np.asarray(obj.epochs, dtype=float), dict(obj.history)
    for attr in ("history_", "history"):
        h = getattr(obj, attr, None)
        if isinstance(h, History):
            return _series(h)
    curve = getattr(obj, "loss_curve_", None)
    if curve is not None:
        data = {"loss": [float(v) for v in curve]}
        scores = getattr(obj, "validation_scores_", None)
        if scores is not None and len(scores):
            data["val_score"] = [float(v) for v in scores]
        return np.arange(1, len(data["loss"]) + 1, dtype=float), data
    if getattr(type(obj), "__name__", "") == "MLP" and hasattr(obj, "fit"):
        raise TypeError(
            "history: this fm.MLP has no training record yet (model.history is set by fit)"
        )
    raise TypeError(
        "history: expected an fm.History, an object with a history_ attribute or a "
        f"scikit-learn style estimator with loss_curve_, got {type(obj).__name__}"
    )


def _layer_keys(data, prefix):
    keys = [k for k in data if k.startswith(prefix) and k[len(prefix):].isdigit()]
    return sorted(keys, key=lambda k: int(k[len(prefix):]))


def plot_history(history: Any, path: str | os.PathLike | None = None, *,
                 title: str | None = None,
                 figsize: tuple[float, float] | None = None) -> Any:
    """A figure of what training recorded.

    Panels, each present only when the data are: "loss" (training and
    validation), "accuracy" (training and validation; for an sklearn-style
    estimator, "validation score"), "learning rate", and "gradient norm per
    layer" on a log scale (one line per layer, first layer darkest), where
    vanishing gradients show as the first layers' lines lying decades below
    the last ones'. The x axis is the epoch count of the model (a second fit
    continues it).

    Needs matplotlib (``pip install "fastmlp[plot]"``), imported only here.

    Parameters
    ----------
    history : fastmlp.History, fastmlp.MLP or estimator
        An ``fm.History`` (what ``fit`` returns), an object holding one in
        ``history_`` or ``history`` (a fitted ``fm.MLP``), or a scikit-learn
        style estimator (``loss_curve_`` and, with early stopping,
        ``validation_scores_``).
    path : str or os.PathLike, optional
        When given, the figure is saved there as PNG with the
        non-interactive Agg backend and is not registered with pyplot
        (nothing to close, no window). Without it the figure comes from
        pyplot, so ``plt.show()`` and notebooks display it; close it when
        done.
    title : str, optional
        A title above the panels.
    figsize : tuple of (float, float), optional
        (width, height) in inches; default 5.2 x 3.6 per panel.

    Returns
    -------
    matplotlib.figure.Figure
        The figure.
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a str or os.PathLike file name, got {type(path).__name__}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title: expected a str or None, got {type(title).__name__}")
    if figsize is not None:
        ok = (isinstance(figsize, (tuple, list)) and len(figsize) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                      for v in figsize))
        if not ok:
            raise TypeError(f"figsize: expected (width, height) in inches, got {figsize!r}")
    epochs, data = _series(history)
    if len(epochs) == 0:
        raise ValueError("history: no epochs recorded, nothing to plot")
    Figure = _matplotlib()

    grad_keys = _layer_keys(data, "grad_norm_")
    acc_keys = [k for k in ("accuracy", "val_accuracy", "val_score") if k in data]
    panels = ["loss"]
    if acc_keys:
        panels.append("accuracy")
    if "lr" in data:
        panels.append("lr")
    if grad_keys:
        panels.append("grad")
    ncols = 1 if len(panels) == 1 else 2
    nrows = math.ceil(len(panels) / ncols)
    size = figsize or (5.2 * ncols, 3.6 * nrows)
    if path is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=size)
    else:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        fig = Figure(figsize=size)
        FigureCanvasAgg(fig)
    axes = {name: fig.add_subplot(nrows, ncols, i + 1) for i, name in enumerate(panels)}

    ax = axes["loss"]
    ax.plot(epochs, data["loss"], label="train", color="C0")
    if "val_loss" in data:
        ax.plot(epochs, data["val_loss"], label="validation", color="C1")
    ax.set_title("loss")
    ax.set_xlabel("epoch")
    ax.legend()

    if "accuracy" in axes:
        ax = axes["accuracy"]
        names = {"accuracy": ("train", "C0"), "val_accuracy": ("validation", "C1"),
                 "val_score": ("validation score", "C1")}
        for k in acc_keys:
            label, color = names[k]
            ax.plot(epochs, data[k], label=label, color=color)
        ax.set_title("validation score" if acc_keys == ["val_score"] else "accuracy")
        ax.set_xlabel("epoch")
        ax.legend()

    if "lr" in axes:
        ax = axes["lr"]
        ax.plot(epochs, data["lr"], label="lr", color="C2")
        ax.set_title("learning rate")
        ax.set_xlabel("epoch")

    if "grad" in axes:
        ax = axes["grad"]
        import matplotlib

        cmap = matplotlib.colormaps["viridis"]
        n = len(grad_keys)
        for i, k in enumerate(grad_keys):
            ax.plot(epochs, data[k], label=f"layer {k[len('grad_norm_'):]}",
                    color=cmap(0.9 * i / max(n - 1, 1)))
        ax.set_yscale("log")
        ax.set_title("gradient norm per layer")
        ax.set_xlabel("epoch")
        if n <= 8:
            ax.legend(fontsize="small")
        else:
            ax.text(0.99, 0.02, f"layer 0 (dark) ... layer {n - 1} (light)",
                    transform=ax.transAxes, ha="right", va="bottom", fontsize="small")

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), format="png", dpi=100)
    return fig


__all__ = ["plot_history"]
