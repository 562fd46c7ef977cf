"""Training history, early stopping and callbacks for MLP.fit."""

from __future__ import annotations

import math

import numpy as np

from ._validation import check_float, check_positive_int


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
    """

    def __init__(self):
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

    def keys(self):
        return self.history.keys()

    def grad_norms(self):
        """(epochs, layers) array of the per-layer gradient norms."""
        keys = sorted((k for k in self.history if k.startswith("grad_norm_")),
                      key=lambda k: int(k.rsplit("_", 1)[1]))
        return np.array([self.history[k] for k in keys]).T if keys else np.empty((len(self), 0))

    def plot(self, path=None, **kwargs):
        """Loss, accuracy, learning rate and per-layer gradient norms as a
        matplotlib Figure, saved as PNG when path is given: see
        fastmlp.plot_history (needs matplotlib, ``pip install "fastmlp[plot]"``)."""
        from .plotting import plot_history

        return plot_history(self, path, **kwargs)

    def __len__(self):
        return len(self.epochs)

    def __repr__(self):
        last = {k: round(v[-1], 6) for k, v in self.history.items()
                if v and not k.startswith(("grad_norm_", "dead_relu_"))}
        return f"History(epochs={len(self)}, last={last})"


class Callback:
    """Base class: override what you need. fit() calls

    on_train_begin(model), on_epoch_end(epoch, logs) after each epoch (logs:
    this epoch's History values), on_batch_end(batch, logs) every
    ``every_n_batches`` batches when that attribute is set (the core then
    returns to Python that often; logs holds the running mean loss), and
    on_train_end(model, history). Returning True from on_epoch_end or
    on_batch_end stops training (after that batch / epoch).
    """

    every_n_batches: int | None = None

    def on_train_begin(self, model):
        pass

    def on_epoch_end(self, epoch, logs):
        return False

    def on_batch_end(self, batch, logs):
        return False

    def on_train_end(self, model, history):
        pass


class EarlyStopping(Callback):
    """Stop when a monitored value has stopped improving.

    monitor: a History key ("val_loss" by default; "loss", "val_accuracy",
    ...). mode "auto" minimises losses and maximises accuracies. An epoch
    improves when it beats the best so far by more than min_delta. After
    `patience` epochs without improvement training stops; with
    restore_best_weights the parameters (and batch-norm running statistics)
    of the best epoch are put back.
    """

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto",
                 restore_best_weights=True):
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

    def on_train_begin(self, model):
        self._reset()
        self._model = model

    def on_epoch_end(self, epoch, logs):
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

    def on_train_end(self, model, history):
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
