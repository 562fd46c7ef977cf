"""Training history (and, later, callbacks)."""

from __future__ import annotations


class History:
    """What fit() recorded, one entry per epoch.

    history["loss"] is the mean training loss of each epoch (the mean over
    its mini-batches, weighted by their sizes); "val_loss" and, for
    classification, "val_accuracy" are there when validation data was given.
    """

    def __init__(self):
        self.history: dict[str, list[float]] = {}
        self.epochs: list[int] = []
        self.interrupted = False

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

    def __len__(self):
        return len(self.epochs)

    def __repr__(self):
        last = {k: round(v[-1], 6) for k, v in self.history.items() if v}
        return f"History(epochs={len(self)}, last={last})"
