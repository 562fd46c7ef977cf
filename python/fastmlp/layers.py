"""Layer specifications (fm.Dense) and the views of a built model's layers."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._enums import activation_name
from ._validation import check_float, check_positive_int


class Dense:
    """A fully connected layer, ``y = act(x W^T + b)`` with W of shape (units, inputs).

    A specification: pass a list of them to :class:`fastmlp.MLP`.

    Parameters
    ----------
    units : int
        Output size of the layer.
    activation : str, optional
        The layer's activation. None takes the model's hidden activation for
        a hidden layer and the identity for the output layer (the loss
        applies softmax, sigmoid or exp).
    dropout : float, default 0.0
        Inverted-dropout rate of this (hidden) layer's output, in [0, 1).
    batch_norm : bool, default False
        Batch normalization after this (hidden) layer's linear part.
    """

    def __init__(self, units: int, activation: str | None = None, dropout: float = 0.0,
                 batch_norm: bool = False) -> None:
        self.units = check_positive_int(units, "units")
        self.activation = None if activation is None else activation_name(activation)
        self.dropout = check_float(dropout, "dropout", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.batch_norm = bool(batch_norm)

    def __repr__(self):
        parts = [str(self.units)]
        if self.activation is not None:
            parts.append(f"activation={self.activation!r}")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.batch_norm:
            parts.append("batch_norm=True")
        return f"Dense({', '.join(parts)})"


def _assign(view, value, name):
    """Copy value into a parameter view after checking it: a failed check
    leaves the parameters as they were."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.shape != view.shape:
        raise ValueError(f"{name}: expected shape {view.shape}, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    view[...] = arr


class Layer:
    """One layer of a built model, as ``model.layers[i]``.

    ``W`` (units, inputs) and ``b`` (units,) are zero-copy, writable views of
    the model's parameter buffer: writing into them changes the model.
    Assigning an array (``layer.W = ...``) copies it in after checking its
    shape and values.

    Parameters
    ----------
    net : fastmlp._core.Network32 or Network64
        The compiled network (models create their layers themselves).
    index : int
        The layer's position, 0 for the first hidden layer.

    Attributes
    ----------
    index : int
        The layer's position.
    in_features, units : int
        Input and output sizes.
    activation : str
        The activation's name.
    dropout : float
        The dropout rate.
    batch_norm : bool
        Whether the layer has batch normalization.
    """

    def __init__(self, net: Any, index: int) -> None:
        self._net = net
        self.index = index
        spec = net.layer_spec(index)
        self.in_features = spec.in_features
        self.units = spec.out_features
        self.dropout = spec.dropout
        self.batch_norm = spec.batch_norm
        self.activation = spec.activation.name

    @property
    def W(self) -> np.ndarray:
        """Weights (units, inputs), a zero-copy writable view (torch.nn.Linear's layout)."""
        return self._net.param(self.index, "W")

    @W.setter
    def W(self, value):
        _assign(self.W, value, f"layers[{self.index}].W")

    @property
    def b(self) -> np.ndarray:
        """Bias (units,), a zero-copy writable view."""
        return self._net.param(self.index, "b")

    @b.setter
    def b(self, value):
        _assign(self.b, value, f"layers[{self.index}].b")

    def _bn(self, what):
        if not self.batch_norm:
            raise AttributeError(f"layers[{self.index}].{what}: the layer has no batch normalization")
        return self._net.param(self.index, what)

    @property
    def gamma(self) -> np.ndarray:
        """Batch-norm scale (units,), a writable view; batch-normalized layers only."""
        return self._bn("gamma")

    @gamma.setter
    def gamma(self, value):
        _assign(self._bn("gamma"), value, f"layers[{self.index}].gamma")

    @property
    def beta(self) -> np.ndarray:
        """Batch-norm shift (units,), a writable view; batch-normalized layers only."""
        return self._bn("beta")

    @beta.setter
    def beta(self, value):
        _assign(self._bn("beta"), value, f"layers[{self.index}].beta")

    @property
    def running_mean(self) -> np.ndarray:
        """Batch-norm running mean (units,), used by predict; batch-normalized layers only."""
        self._bn("gamma")
        return self._net.running_mean(self.index)

    @property
    def running_var(self) -> np.ndarray:
        """Batch-norm running variance (units,), unbiased as torch keeps it;
        batch-normalized layers only."""
        self._bn("gamma")
        return self._net.running_var(self.index)

    def __repr__(self):
        extra = ""
        if self.dropout:
            extra += f", dropout={self.dropout}"
        if self.batch_norm:
            extra += ", batch_norm=True"
        return (
            f"Layer({self.index}: {self.in_features} -> {self.units}, "
            f"activation={self.activation!r}{extra})"
        )
