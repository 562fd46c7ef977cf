"""fm.MLP: the model users build, train and query.

The model holds a compiled core network (fastmlp._core.Network32/64), checks
every argument, converts data once to the model's dtype, and turns the
core's results into NumPy arrays and a History. All arithmetic is in the core.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np

from . import _core
from ._enums import INIT_ID, LOSS_ID, RELU_LIKE, act_id, activation_name, loss_name
from ._validation import check_float, check_positive_int, check_X, check_y, resolve_dtype
from .callbacks import History
from .layers import Dense, Layer
from .optim import SGD, Optimizer

_NOT_YET = "arrives with the training-engine work (optimizers, regularization, dropout, batch norm)"


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected a non-negative integer, got {seed!r}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed}")
    return int(seed)


class MLP:
    """A multilayer perceptron trained by backpropagation.

    layers: the layer sizes, input first (``[784, 256, 10]``), or a list of
    ``fm.Dense`` (optionally preceded by the input size; without it the model
    is built when it first sees data). ``activation`` is used by every hidden
    layer that does not name its own; the output layer is linear unless its
    Dense names an activation (allowed with ``mse`` only: cross_entropy and
    binary_cross_entropy apply softmax / sigmoid to the logits themselves).
    """

    def __init__(
        self,
        layers,
        activation="relu",
        loss="cross_entropy",
        init="auto",
        dtype="float32",
        dropout=0.0,
        batch_norm=False,
        seed=0,
    ):
        self.activation = activation_name(activation)
        self.loss_name = loss_name(loss)
        if not isinstance(init, str) or (init != "auto" and init not in INIT_ID):
            raise ValueError(f"init: expected 'auto' or one of {list(INIT_ID)}, got {init!r}")
        self.init = init
        self.dtype = resolve_dtype(dtype)
        self.dropout = check_float(dropout, "dropout", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.batch_norm = bool(batch_norm)
        self.seed = _check_seed(seed)
        self._n_inputs, self._specs = self._parse_layers(layers)
        if self.dropout or self.batch_norm or any(s.dropout or s.batch_norm for s in self._specs):
            raise NotImplementedError(f"dropout and batch_norm: not available yet; {_NOT_YET}")
        self._net = None
        self._layers = None
        self._optimizer: Optimizer = SGD()
        self._epochs_done = 0
        self._lock = threading.RLock()
        if self._n_inputs is not None:
            self._build(self._n_inputs)

    # -- construction -----------------------------------------------------
    @staticmethod
    def _parse_layers(layers):
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers: expected a list of sizes or fm.Dense, got {layers!r}")
        items = list(layers)
        if not items:
            raise ValueError("layers: expected at least an input size and one layer, got []")
        n_inputs = None
        if not isinstance(items[0], Dense):
            n_inputs = check_positive_int(items[0], "layers[0] (the input size)")
            items = items[1:]
        if not items:
            raise ValueError(
                "layers: expected the input size followed by at least one layer size, "
                f"got {list(layers)!r}"
            )
        specs = []
        for i, item in enumerate(items):
            if isinstance(item, Dense):
                specs.append(item)
            else:
                specs.append(Dense(check_positive_int(item, f"layers[{i + 1}]")))
        return n_inputs, specs

    def _build(self, n_inputs):
        last = len(self._specs) - 1
        acts = []
        for i, spec in enumerate(self._specs):
            if spec.activation is not None:
                acts.append(spec.activation)
            else:
                acts.append("identity" if i == last else self.activation)
        if self.loss_name != "mse" and acts[-1] != "identity":
            raise ValueError(
                f"layers: the output layer's activation must be None/'identity' with loss "
                f"{self.loss_name!r}, which applies {'softmax' if self.loss_name == 'cross_entropy' else 'sigmoid'} "
                f"to the logits itself; got {acts[-1]!r}"
            )
        sizes = [n_inputs] + [s.units for s in self._specs]
        spec = [(sizes[i], sizes[i + 1], act_id(a)) for i, a in enumerate(acts)]
        core_cls = _core.Network32 if self.dtype == np.float32 else _core.Network64
        net = core_cls(spec, LOSS_ID[self.loss_name])
        schemes = []
        for a in acts:
            name = self.init
            if name == "auto":
                name = "he_uniform" if a in RELU_LIKE else "glorot_uniform"
            schemes.append(INIT_ID[name])
        net.initialize(schemes, self.seed)
        self._optimizer._apply(net)
        self._net = net
        self._acts = acts
        self._sizes = sizes
        self._layers = [Layer(net, i, a) for i, a in enumerate(acts)]

    def _ensure_built(self, X):
        if self._net is None:
            arr = np.asarray(X)
            if arr.ndim != 2:
                raise ValueError(
                    f"X: expected a 2-D array (n_samples, n_features), got shape {arr.shape}"
                )
            self._build(check_positive_int(arr.shape[1], "X.shape[1]"))

    def _require_built(self):
        if self._net is None:
            raise RuntimeError(
                "the model is not built yet: its input size is unknown until it sees data "
                "(give the input size as the first element of `layers` to build it at once)"
            )
        return self._net

    # -- introspection ----------------------------------------------------
    @property
    def layers(self):
        self._require_built()
        return self._layers

    @property
    def sizes(self):
        return list(self._sizes) if self._net is not None else None

    @property
    def n_params(self):
        return self._require_built().num_params

    @property
    def is_classifier(self):
        return self.loss_name != "mse"

    @property
    def optimizer(self):
        return self._optimizer

    def __repr__(self):
        sizes = self._sizes if self._net is not None else ["?"] + [s.units for s in self._specs]
        return (
            f"MLP({sizes}, activation={self.activation!r}, loss={self.loss_name!r}, "
            f"dtype={np.dtype(self.dtype).name!r})"
        )

    # -- configuration ----------------------------------------------------
    def compile(self, optimizer=None, l1=0.0, l2=0.0, clip_norm=None, clip_value=None,
                lr_schedule=None):
        """Choose the optimizer (fm.optim.SGD for now). Returns the model."""
        if optimizer is None:
            optimizer = SGD()
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected an fm.optim optimizer, got {optimizer!r}")
        if check_float(l1, "l1", minimum=0.0) or check_float(l2, "l2", minimum=0.0):
            raise NotImplementedError(f"l1/l2: not available yet; {_NOT_YET}")
        if clip_norm is not None or clip_value is not None:
            raise NotImplementedError(f"clip_norm/clip_value: not available yet; {_NOT_YET}")
        if lr_schedule is not None:
            raise NotImplementedError(f"lr_schedule: not available yet; {_NOT_YET}")
        with self._lock:
            self._optimizer = optimizer
            if self._net is not None:
                optimizer._apply(self._net)
        return self

    # -- computation ------------------------------------------------------
    def _X(self, X, name="X"):
        self._ensure_built(X)
        return check_X(X, self.dtype, self._sizes[0], name=name)

    def _y(self, y, n, name="y"):
        return check_y(y, self.loss_name, n, self._sizes[-1], self.dtype, name=name)

    def forward(self, X, training=False):
        """The network's output for X, (n, outputs): class probabilities for
        cross_entropy (softmax) and binary_cross_entropy (sigmoid), the last
        layer's activation output for mse."""
        X = self._X(X)
        with self._lock:
            return self._net.forward(X)

    def loss(self, X, y):
        """Mean loss over the rows of X; changes nothing."""
        X = self._X(X)
        y = self._y(y, X.shape[0])
        with self._lock:
            return float(self._net.loss(X, y))

    def gradients(self, X, y):
        """Gradients of the mean loss, per layer {"W": dW, "b": db}; changes no parameter."""
        X = self._X(X)
        y = self._y(y, X.shape[0])
        net = self._net
        with self._lock:
            net.compute_gradients(X, y)
            return [
                {"W": net.weight_grad(i).copy(), "b": net.bias_grad(i).copy()}
                for i in range(net.num_layers)
            ]

    def train_step(self, X, y):
        """One optimizer step on this batch. Returns the batch's loss (before the step)."""
        X = self._X(X)
        y = self._y(y, X.shape[0])
        with self._lock:
            value = float(self._net.train_step(X, y))
        if not np.isfinite(value):
            raise FloatingPointError(
                f"train_step: the loss is {value}; the parameters were left as they were. "
                "Try a lower learning rate or standardized inputs."
            )
        return value

    def fit(self, X, y, epochs=10, batch_size=32, shuffle=True, validation_data=None,
            validation_split=0.0, early_stopping=None, verbose=1, callbacks=(), seed=None):
        """Train by mini-batch gradient descent. Each epoch runs entirely in
        the core with the GIL released; Ctrl-C stops it between two batches
        (KeyboardInterrupt, parameters intact). Returns a History."""
        epochs = check_positive_int(epochs, "epochs", minimum=0)
        batch_size = check_positive_int(batch_size, "batch_size")
        split = check_float(validation_split, "validation_split", minimum=0.0, maximum=1.0,
                            max_inclusive=False)
        if early_stopping is not None or tuple(callbacks):
            raise NotImplementedError(f"early_stopping/callbacks: not available yet; {_NOT_YET}")
        shuffle_seed = self.seed if seed is None else _check_seed(seed)
        X = self._X(X)
        y = self._y(y, X.shape[0])
        Xv = yv = None
        if validation_data is not None:
            if split:
                raise ValueError("validation_split: give validation_data or validation_split, not both")
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data: expected a tuple (X_val, y_val)")
            Xv = self._X(validation_data[0], name="validation_data[0]")
            yv = self._y(validation_data[1], Xv.shape[0], name="validation_data[1]")
        elif split:
            cut = int(X.shape[0] * (1.0 - split))
            if cut <= 0 or cut >= X.shape[0]:
                raise ValueError(
                    f"validation_split: {split} leaves no rows for training or validation "
                    f"out of {X.shape[0]}"
                )
            X, Xv, y, yv = X[:cut], X[cut:], y[:cut], y[cut:]
        n = X.shape[0]
        history = History()
        for _ in range(epochs):
            t0 = time.perf_counter()
            perm = _core.permutation(n, shuffle_seed, self._epochs_done) if shuffle else None
            with self._lock:
                r = self._net.train_epoch(X, y, perm, batch_size)
            if r["diverged"]:
                raise FloatingPointError(
                    f"fit: training diverged at epoch {self._epochs_done + 1}, batch "
                    f"{r['bad_batch'] + 1}: the loss became {r['loss_sum']}. The parameters are "
                    "those before that batch. Try a lower learning rate, standardized inputs "
                    "or a smaller network."
                )
            record = {"loss": r["loss_sum"] / r["rows"]}
            if Xv is not None:
                record.update(self._evaluate(Xv, yv, prefix="val_"))
            self._epochs_done += 1
            history._record(self._epochs_done, **record)
            if verbose:
                items = "  ".join(f"{k} {v:.5g}" for k, v in record.items())
                print(f"epoch {self._epochs_done}  {items}  ({time.perf_counter() - t0:.3f} s)",
                      file=sys.stdout, flush=True)
        return history

    def _evaluate(self, X, y, prefix=""):
        with self._lock:
            out = {prefix + "loss": float(self._net.loss(X, y))}
            if self.loss_name == "cross_entropy":
                proba = self._net.forward(X)
                truth = y if y.ndim == 1 else y.argmax(axis=1)
                out[prefix + "accuracy"] = float(np.mean(proba.argmax(axis=1) == truth))
            elif self.loss_name == "binary_cross_entropy":
                proba = self._net.forward(X)
                out[prefix + "accuracy"] = float(np.mean((proba > 0.5) == (y > 0.5)))
        return out

    def predict(self, X):
        """Class ids (cross_entropy), 0/1 labels (binary_cross_entropy) or
        values (mse). A single output column is returned as shape (n,)."""
        out = self.forward(X)
        if self.loss_name == "cross_entropy":
            return out.argmax(axis=1)
        if self.loss_name == "binary_cross_entropy":
            out = (out > 0.5).astype(np.int64)
        return out[:, 0] if out.shape[1] == 1 else out

    def predict_proba(self, X):
        """Class probabilities (n, outputs); classification losses only."""
        if not self.is_classifier:
            raise AttributeError("predict_proba: only for cross_entropy and binary_cross_entropy models")
        return self.forward(X)

    def score(self, X, y):
        """Accuracy for classification, R^2 for mse."""
        X = self._X(X)
        y = self._y(y, X.shape[0])
        if self.is_classifier:
            return self._evaluate(X, y)["accuracy"]
        pred = self.forward(X)
        ss_res = float(((y - pred) ** 2).sum())
        ss_tot = float(((y - y.mean(axis=0)) ** 2).sum())
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0
