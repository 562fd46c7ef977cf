"""Training history, early stopping and callbacks for MLP.fit."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ._validation import check_float, check_positive_int

if TYPE_CHECKING:
    import os
    from collections.abc import KeysView

    from .model import MLP


class History:
    """What fit() recorded, one entry per epoch.

    history["loss"] is the mean training objective of each epoch (loss plus
    the L1/L2 penalty, averaged over its mini-batches weighted by their
    sizes); "accuracy" (classification) is measured on the training batches
    as they were trained, in training mode (dropout on). "val_loss" and
    "val_accuracy" are there when validation data was given. "lr" is the
    learning rate the epoch ran with. "grad_norm_<l>" is the mean over the
    epoch's batches of the 2-norm of layer l's gradient (before clipping), so
    vanishing and exploding gradients show up per layer; "dead_relu_<l>" is
    the fraction of layer l's ReLU units that gave 0 for every training row of
    the epoch. "time" is the epoch's wall time in seconds.

    ``interrupted`` is True when fit ended by an exception (Ctrl-C, a
    diverging loss): the model then keeps the parameters it had at that
    point, and EarlyStopping does not restore its best weights.

    A History is created by :meth:`fastmlp.MLP.fit`; it is read like a dict
    (``history["val_loss"]``, ``"loss" in history``, ``history.keys()``) and
    ``len(history)`` is the number of epochs recorded.

    Attributes
    ----------
    history : dict of str to list of float
        One list per recorded value, one element per epoch.
    epochs : list of int
        The model's epoch count at each entry (a second fit continues it).
    interrupted : bool
        True when fit ended by an exception.
    stopped_early : bool
        True when EarlyStopping ended training.
    best_epoch : int or None
        The best epoch EarlyStopping saw (None without early stopping).
    """

    def __init__(self) -> None:
        self.history: dict[str, list[float]] = {}
        self.epochs: list[int] = []
        self.interrupted = False
        self.stopped_early = False
        self.best_epoch = None

    def _record(self, epoch, **values):
        self.epochs.append(epoch)
        for key, value in values.items():
            self.history.setdefault(key, []).append(float(value))

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history

    def keys(self) -> KeysView[str]:
        """The recorded names ("loss", "val_loss", "lr", "grad_norm_0", ...)."""
        return self.history.keys()

    def grad_norms(self) -> np.ndarray:
        """(epochs, layers) array of the per-layer gradient norms."""
        keys = sorted((k for k in self.history if k.startswith("grad_norm_")),
                      key=lambda k: int(k.rsplit("_", 1)[1]))
        return np.array([self.history[k] for k in keys]).T if keys else np.empty((len(self), 0))

    def plot(self, path: str | os.PathLike | None = None, **kwargs: Any) -> Any:
        """Loss, accuracy, learning rate and per-layer gradient norms as a
        matplotlib Figure: :func:`fastmlp.plot_history` of this History.

        Needs matplotlib (``pip install "fastmlp[plot]"``).

        Parameters
        ----------
        path : str or os.PathLike, optional
            Save the figure there as PNG (without pyplot).
        **kwargs
            ``title`` and ``figsize``, as for :func:`fastmlp.plot_history`.

        Returns
        -------
        matplotlib.figure.Figure
            The figure.
        """
        from .plotting import plot_history

        return plot_history(self, path, **kwargs)

    def __len__(self):
        return len(self.epochs)

    def __repr__(self):
        last = {k: round(v[-1], 6) for k, v in self.history.items()
                if v and not k.startswith(("grad_norm_", "dead_relu_"))}
        return f"History(epochs={len(self)}, last={last})"


class Callback:
    """Base class of fit's callbacks: override what you need.

    :meth:`fastmlp.MLP.fit` calls ``on_train_begin(model)``, then
    ``on_epoch_end(epoch, logs)`` after each epoch, ``on_batch_end(batch,
    logs)`` every ``every_n_batches`` batches when that attribute is set (the
    core then returns to Python that often), and ``on_train_end(model,
    history)``. Returning True from on_epoch_end or on_batch_end stops
    training (after that batch / epoch).

    Attributes
    ----------
    every_n_batches : int or None
        Call :meth:`on_batch_end` every this many batches (None: never).
    """

    every_n_batches: int | None = None

    def on_train_begin(self, model: MLP) -> None:
        """Called once before the first epoch.

        Parameters
        ----------
        model : fastmlp.MLP
            The model being trained.
        """

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool | None:
        """Called after each epoch; return True to stop training.

        Parameters
        ----------
        epoch : int
            The model's epoch count, 1-based (a second fit continues it).
        logs : dict of str to float
            This epoch's History values (a copy).

        Returns
        -------
        bool or None
            True stops training after this epoch.
        """
        return False

    def on_batch_end(self, batch: int, logs: dict[str, float]) -> bool | None:
        """Called every ``every_n_batches`` batches when that attribute is set.

        Parameters
        ----------
        batch : int
            Batches done in this epoch.
        logs : dict of str to float
            ``{"loss": running mean loss of the epoch so far}``.

        Returns
        -------
        bool or None
            True stops training after this batch.
        """
        return False

    def on_train_end(self, model: MLP, history: History) -> None:
        """Called once when training ends, also after an exception.

        Parameters
        ----------
        model : fastmlp.MLP
            The model.
        history : fastmlp.History
            What fit recorded (``history.interrupted`` is True after an
            exception).
        """


class EarlyStopping(Callback):
    """Stop when a monitored value has stopped improving.

    An epoch improves when it beats the best so far by more than
    ``min_delta``. After ``patience`` epochs without improvement training
    stops; with ``restore_best_weights`` the parameters (and batch-norm
    running statistics) of the best epoch are put back, unless fit ended by
    an exception.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A History key: "val_loss", "loss", "val_accuracy", ...
    patience : int, default 5
        Epochs without improvement before training stops.
    min_delta : float, default 0.0
        The least change that counts as an improvement.
    mode : {"auto", "min", "max"}, default "auto"
        "auto" minimises losses and maximises accuracies (a monitor whose
        name contains "acc").
    restore_best_weights : bool, default True
        Put back the parameters of the best epoch when training stops.

    Attributes
    ----------
    best : float
        The best monitored value so far.
    best_epoch : int or None
        The epoch that gave it.
    stopped_epoch : int or None
        The epoch at which training stopped (None: it did not stop early).
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = True) -> None:
        if not isinstance(monitor, str):
            raise TypeError(f"monitor: expected a History key such as 'val_loss', got {monitor!r}")
        self.monitor = monitor
        self.patience = check_positive_int(patience, "patience", minimum=0)
        self.min_delta = check_float(min_delta, "min_delta", minimum=0.0)
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        self.mode = mode
        self.restore_best_weights = bool(restore_best_weights)
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = None
        self.wait = 0
        self.stopped_epoch = None
        self._snapshot = None

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, model: MLP) -> None:
        """Reset the best value and remember the model.

        Parameters
        ----------
        model : fastmlp.MLP
            The model being trained.
        """
        self._reset()
        self._model = model

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> bool:
        """Compare the monitored value with the best so far.

        Parameters
        ----------
        epoch : int
            The model's epoch count.
        logs : dict of str to float
            This epoch's History values; must hold ``monitor``.

        Returns
        -------
        bool
            True after ``patience`` epochs without improvement.
        """
        if self.monitor not in logs:
            raise ValueError(
                f"early_stopping: monitor {self.monitor!r} is not among this epoch's values "
                f"{sorted(logs)}; give validation data or monitor 'loss'"
            )
        value = float(logs[self.monitor])
        if self._improved(value):
            self.best = value
            self.best_epoch = epoch
            self.wait = 0
            if self.restore_best_weights:
                self._snapshot = self._model._snapshot()
            return False
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            return True
        return False

    def on_train_end(self, model: MLP, history: History) -> None:
        """Record the outcome in history and restore the best weights.

        Parameters
        ----------
        model : fastmlp.MLP
            The model.
        history : fastmlp.History
            Its record: ``stopped_early`` and ``best_epoch`` are set here.
        """
        if self.stopped_epoch is not None:
            history.stopped_early = True
        history.best_epoch = self.best_epoch
        if self.restore_best_weights and self._snapshot is not None and not history.interrupted:
            model._restore(self._snapshot)
        self._snapshot = None

    def __repr__(self):
        return (f"EarlyStopping(monitor={self.monitor!r}, patience={self.patience}, "
                f"min_delta={self.min_delta}, mode={self.mode!r}, "
                f"restore_best_weights={self.restore_best_weights})")


__all__ = ["Callback", "EarlyStopping", "History"]
