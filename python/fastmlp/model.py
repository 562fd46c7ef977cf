"""fm.MLP: the model users build, train and query.

The model holds a compiled core network (fastmlp._core.Network32/64), checks
every argument, converts data once to the model's dtype, and turns the
core's results into NumPy arrays and a History. All arithmetic is in the core.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from . import _core, _enums, _progress, distributed, io
from . import optim as _optim
from ._validation import (
    check_float,
    check_loss_weights,
    check_positive_int,
    check_sparse_X,
    check_X,
    check_y,
    class_weight_array,
    dense_rows,
    is_sparse,
    resolve_dtype_policy,
)
from .callbacks import Callback, EarlyStopping, History
from .layers import Dense, Layer
from .optim import SGD, Optimizer

# Sparse X is densified this many bytes of rows at a time (fit: whole
# batches; predict: rows).
_SPARSE_BLOCK_BYTES = 8 << 20

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Sequence

    from numpy.typing import ArrayLike, DTypeLike

    from .optim import LRSchedule

_REMEDIES = (
    "Try a lower learning rate, gradient clipping (compile(clip_norm=1.0)), standardized inputs "
    "or batch normalization."
)


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed: expected a non-negative integer, got {seed!r}")
    if not 0 <= int(seed) < 2**64:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed}")
    return int(seed)


# What the losses that own their output transform apply to the logits.
_OUTPUT_TRANSFORM = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid",
                     "poisson": "exp"}


class MLP:
    """A multilayer perceptron trained by backpropagation.

    The parameters, the workspace and every loop live in the compiled core;
    this object checks arguments, converts data once to the model's dtype and
    returns NumPy arrays. Configure training with :meth:`compile`, train with
    :meth:`fit` (or :meth:`train_step`), query with :meth:`predict`.

    Parameters
    ----------
    layers : sequence of int or fastmlp.Dense
        The layer sizes, input first (``[784, 256, 10]``), or a list of
        ``fm.Dense`` (optionally preceded by the input size; without it the
        model is built when it first sees data).
    activation : str, default "relu"
        The activation of every hidden layer that does not name its own:
        identity, sigmoid, tanh, relu, leaky_relu, elu, gelu or softplus.
        The output layer is linear unless its Dense names an activation
        (allowed with ``mse`` only: cross_entropy, binary_cross_entropy and
        poisson apply softmax / sigmoid / exp to the logits themselves).
    loss : str, default "cross_entropy"
        ``"mse"``, ``"cross_entropy"`` (softmax output, integer class ids or
        one-hot targets), ``"binary_cross_entropy"`` (sigmoid output, 0/1
        targets) or ``"poisson"`` (exp output, counts >= 0).
    init : str, default "auto"
        Weight initialization: ``"auto"`` (He-uniform for the ReLU family,
        Glorot-uniform otherwise), he_uniform, he_normal, glorot_uniform,
        glorot_normal or lecun_normal, with torch.nn.init's variances.
    dtype : str or numpy dtype, default "float32"
        ``"float32"`` (the fast path), ``"float64"`` (exact gradient
        checks) or ``"mixed_bfloat16"`` (Keras' name for the policy):
        float32 parameters (``layers[i].W`` is the float32 master copy),
        gradients, optimizer state, batch-norm statistics, loss and
        reductions, with the operands of the three GEMMs per layer rounded
        to bfloat16 (nearest even) while they are packed and the products
        summed in float32. It needs a CPU with AVX512_BF16 (ValueError
        otherwise, unless ``FASTMLP_ISA=generic_bf16`` forces the portable
        bf16 kernel). The model's arrays are float32 (:attr:`dtype`);
        :attr:`dtype_policy` names the policy.
    dropout : float, default 0.0
        Inverted-dropout rate of every hidden layer, in [0, 1).
    batch_norm : bool, default False
        Batch normalization after each hidden layer's linear part.
    seed : int, default 0
        Seeds the initialization, the shuffling and the dropout masks
        (counter-based, so results do not depend on the thread count).

    Attributes
    ----------
    dtype : numpy.dtype
        The dtype of the parameters and of the data the model takes and
        returns: float32 or float64 (float32 for mixed_bfloat16).
    dtype_policy : str
        "float32", "float64" or "mixed_bfloat16": what ``dtype`` asked for
        (saved, loaded and pickled with the model).
    history : fastmlp.History or None
        The record of the last :meth:`fit` (Keras' ``model.history``).

    See Also
    --------
    fastmlp.MLPClassifier, fastmlp.MLPRegressor : the scikit-learn spelling.

    Examples
    --------
    >>> import fastmlp as fm
    >>> from fastmlp.datasets import make_spirals
    >>> X, y = make_spirals(n_per_class=100, seed=0)
    >>> model = fm.MLP([2, 32, 32, 3], activation="relu", seed=0)
    >>> model.compile(optimizer=fm.optim.Adam(lr=0.01))
    MLP([2, 32, 32, 3], ...)
    >>> history = model.fit(X, y, epochs=50, batch_size=32, verbose=0)
    >>> len(history), history["loss"][-1] < history["loss"][0]
    (50, True)
    >>> model.predict(X[:5]).shape
    (5,)
    """

    def __init__(
        self,
        layers: Sequence[int | Dense],
        activation: str = "relu",
        loss: str = "cross_entropy",
        init: str = "auto",
        dtype: DTypeLike = "float32",
        dropout: float = 0.0,
        batch_norm: bool = False,
        seed: int = 0,
    ) -> None:
        self.activation = _enums.activation_name(activation)
        self.loss_name = _enums.loss_name(loss)
        if not isinstance(init, str) or (init != "auto" and init not in _enums.INITS):
            raise ValueError(f"init: expected 'auto' or one of {list(_enums.INITS)}, got {init!r}")
        self.init = init
        self.dtype, self.dtype_policy = resolve_dtype_policy(dtype)
        self.dropout = check_float(dropout, "dropout", minimum=0.0, maximum=1.0, max_inclusive=False)
        self.batch_norm = bool(batch_norm)
        self.seed = _check_seed(seed)
        self._n_inputs, self._specs = self._parse_layers(layers)
        last = self._specs[-1]
        if last.dropout or last.batch_norm:
            raise ValueError(
                "layers: dropout and batch_norm apply to hidden layers; the output layer "
                f"{last!r} cannot have them"
            )
        self._net = None
        self._layers = None
        self._optimizer: Optimizer = SGD()
        self._reg = {"l1": 0.0, "l2": 0.0, "clip_norm": None, "clip_value": None}
        self._schedule = None
        self._schedule_started = False
        self._epochs_done = 0
        self.history = None  # the History of the last fit (Keras' model.history)
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
                f"{self.loss_name!r}, which applies {_OUTPUT_TRANSFORM[self.loss_name]} "
                f"to the logits itself; got {acts[-1]!r}"
            )
        sizes = [n_inputs] + [s.units for s in self._specs]
        specs = []
        for i, a in enumerate(acts):
            hidden = i < last
            specs.append(_core.LayerSpec(
                in_features=sizes[i], out_features=sizes[i + 1],
                activation=_enums.activation(a),
                dropout=float(self._specs[i].dropout or (self.dropout if hidden else 0.0)),
                batch_norm=bool(self._specs[i].batch_norm or (self.batch_norm and hidden))))
        core_cls = _core.Network32 if self.dtype == np.float32 else _core.Network64
        net = core_cls(specs, _enums.loss(self.loss_name))
        net.bf16_gemm = self.dtype_policy == "mixed_bfloat16"
        schemes = []
        for a in acts:
            name = self.init
            if name == "auto":
                name = "he_uniform" if a in _enums.RELU_LIKE else "glorot_uniform"
            schemes.append(_enums.init(name))
        net.initialize(schemes, self.seed)
        net.set_optimizer(self._optimizer._core_config())
        self._apply_regularization(net)
        self._acts = acts
        self._sizes = sizes
        self._layers = [Layer(net, i) for i in range(len(acts))]
        # Last: a thread that sees _net set (_ensure_built's unlocked check)
        # finds the rest of the network's attributes in place.
        self._net = net

    @property
    def _has_batch_norm(self):
        return any(layer.batch_norm for layer in self._layers)

    def _ensure_built(self, X):
        if self._net is not None:
            return
        shape = X.shape if is_sparse(X) else np.asarray(X).shape
        if len(shape) != 2:
            raise ValueError(
                f"X: expected a 2-D array (n_samples, n_features), got shape {shape}"
            )
        n_inputs = check_positive_int(shape[1], "X.shape[1]")
        # Under the model's lock and checked again: two threads whose first
        # calls (fit, say) both found no network would otherwise each build
        # one, and the second would replace the first while it trains. The
        # loser uses the winner's network (and a second fit is then refused
        # by the core's training claim, RuntimeError, as on a built model).
        with self._lock:
            if self._net is None:
                self._build(n_inputs)

    def _require_built(self):
        if self._net is None:
            raise RuntimeError(
                "the model is not built yet: its input size is unknown until it sees data "
                "(give the input size as the first element of `layers` to build it at once)"
            )
        return self._net

    # -- introspection ----------------------------------------------------
    @property
    def layers(self) -> list[Layer]:
        """The built model's layers (:class:`fastmlp.Layer`), input side first;
        their ``W`` and ``b`` are zero-copy, writable views."""
        self._require_built()
        return self._layers

    @property
    def sizes(self) -> list[int] | None:
        """Layer sizes, input first (None until the model is built)."""
        return list(self._sizes) if self._net is not None else None

    @property
    def n_params(self) -> int:
        """Number of trainable parameters (weights, biases, batch-norm scales and shifts)."""
        return self._require_built().num_params

    @property
    def is_classifier(self) -> bool:
        """True for the classification losses (cross_entropy, binary_cross_entropy)."""
        return self.loss_name in ("cross_entropy", "binary_cross_entropy")

    @property
    def optimizer(self) -> Optimizer:
        """The optimizer chosen by :meth:`compile` (SGD with its defaults before)."""
        return self._optimizer

    def __repr__(self):
        sizes = self._sizes if self._net is not None else ["?"] + [s.units for s in self._specs]
        return (
            f"MLP({sizes}, activation={self.activation!r}, loss={self.loss_name!r}, "
            f"dtype={self.dtype_policy!r})"
        )

    # -- configuration ----------------------------------------------------
    def compile(self, optimizer: Optimizer | str | None = None, l1: float = 0.0,
                l2: float = 0.0, clip_norm: float | None = None,
                clip_value: float | None = None,
                lr_schedule: LRSchedule | None = None) -> MLP:
        """Choose the optimizer, L1/L2 penalties, gradient clipping and a
        learning-rate schedule.

        A new optimizer starts from fresh state.

        Parameters
        ----------
        optimizer : fastmlp.optim.Optimizer or str, optional
            An ``fm.optim`` optimizer, or its name ("sgd", "adam", "adamw",
            "rmsprop", "adagrad") for its defaults. None: ``SGD()``.
        l1, l2 : float, default 0.0
            ``loss += l1 * sum(abs(W)) + l2 * sum(W**2)`` over every weight
            matrix (not biases or batch-norm parameters), with gradient
            ``l1 * sign(W) + 2 * l2 * W``: the penalty form of Keras'
            regularizers, distinct from the optimizers' ``weight_decay``.
        clip_norm : float, optional
            Scale all gradients together so that their global 2-norm is at
            most ``clip_norm`` (``torch.nn.utils.clip_grad_norm_``).
        clip_value : float, optional
            Clamp every gradient element to ``[-clip_value, clip_value]``
            (``torch.nn.utils.clip_grad_value_``), before ``clip_norm``.
        lr_schedule : fastmlp.optim.LRSchedule, optional
            A learning-rate schedule, stepped once per epoch by :meth:`fit`.

        Returns
        -------
        MLP
            The model itself.
        """
        if optimizer is None:
            optimizer = SGD()
        if isinstance(optimizer, str):
            optimizer = _optim.optimizer_by_name(optimizer)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected an fm.optim optimizer or its name, got {optimizer!r}")
        reg = {
            "l1": check_float(l1, "l1", minimum=0.0),
            "l2": check_float(l2, "l2", minimum=0.0),
            "clip_norm": None if clip_norm is None else check_float(
                clip_norm, "clip_norm", minimum=0.0, min_inclusive=False),
            "clip_value": None if clip_value is None else check_float(
                clip_value, "clip_value", minimum=0.0, min_inclusive=False),
        }
        if lr_schedule is not None and not isinstance(lr_schedule, _optim.LRSchedule):
            raise TypeError(f"lr_schedule: expected an fm.optim schedule, got {lr_schedule!r}")
        # The core validates the optimizer before anything changes: an
        # optimizer object edited into an invalid state fails here, leaving
        # the model as it was.
        config = optimizer._core_config()
        with self._lock:
            if self._net is not None:
                # First, while the model is as it was: the core refuses while
                # another thread trains it (RuntimeError).
                with self._net.training("compile"):
                    self._net.set_optimizer(config)
                    self._apply_regularization(self._net, reg)
            self._optimizer = optimizer
            self._reg = reg
            self._schedule = lr_schedule
            self._schedule_started = False
        return self

    def _apply_regularization(self, net, reg=None):
        r = self._reg if reg is None else reg
        net.set_regularization(r["l1"], r["l2"], r["clip_value"] or 0.0, r["clip_norm"] or 0.0)

    @property
    def lr_schedule(self) -> LRSchedule | None:
        """The learning-rate schedule chosen by :meth:`compile`, or None."""
        return self._schedule

    # -- computation ------------------------------------------------------
    def _X(self, X, name="X", keep_sparse=False):
        """X checked and converted. scipy.sparse X stays sparse (CSR) where
        the caller densifies it block by block (keep_sparse); elsewhere (a
        single batch: train_step, loss, gradients) it is densified here."""
        self._ensure_built(X)
        if is_sparse(X):
            Xs = check_sparse_X(X, self.dtype, self._sizes[0], name=name)
            return Xs if keep_sparse else dense_rows(Xs, slice(None), self.dtype)
        return check_X(X, self.dtype, self._sizes[0], name=name)

    def _block_rows(self, multiple=1):
        """Rows per densified block of sparse X: a multiple of `multiple`."""
        per = _SPARSE_BLOCK_BYTES // (self._sizes[0] * self.dtype.itemsize)
        return max(multiple, per - per % multiple)

    def _forward_checked(self, X, training=False):
        """forward() of X already checked by _X (sparse: block by block)."""
        if not is_sparse(X):
            with self._lock:
                return self._net.forward(X, bool(training))
        step = self._block_rows()
        parts = []
        for lo in range(0, X.shape[0], step):
            block = dense_rows(X, slice(lo, lo + step), self.dtype)
            with self._lock:
                parts.append(self._net.forward(block, bool(training)))
        return np.concatenate(parts, axis=0)

    def _y(self, y, n, name="y"):
        return check_y(y, self.loss_name, n, self._sizes[-1], self.dtype, name=name)

    def forward(self, X: ArrayLike, training: bool = False) -> np.ndarray:
        """The network's output for X.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
            Input rows, converted once to the model's dtype. A sparse matrix
            is densified a block of rows at a time (all at once with
            training=True, whose batch statistics span the whole of X).
        training : bool, default False
            True: batch-norm batch statistics and the dropout masks of the
            next training step (nothing is updated).

        Returns
        -------
        ndarray of shape (n_samples, n_outputs)
            Class probabilities for cross_entropy (softmax) and
            binary_cross_entropy (sigmoid), the predicted means exp(z) for
            poisson, the last layer's activation output for mse.
        """
        return self._forward_checked(self._X(X, keep_sparse=not training), training)

    def _weights(self, sample_weight, class_weight, y, n, name="sample_weight"):
        """The loss weights as the core takes them, checked (_validation)."""
        sw = None if sample_weight is None else check_loss_weights(
            sample_weight, name, n, self.dtype)
        cw = None if class_weight is None else class_weight_array(
            class_weight, self.loss_name, self._sizes[-1], y, self.dtype)
        return sw, cw

    def loss(self, X: ArrayLike, y: ArrayLike, training: bool = False,
             sample_weight: ArrayLike | None = None,
             class_weight: dict | Sequence[float] | str | None = None) -> float:
        """Mean loss over the rows of X plus the L1/L2 penalty; changes nothing.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input rows.
        y : array-like
            Targets: class ids (n_samples,) or one-hot rows for
            cross_entropy, 0/1 targets for binary_cross_entropy, values for
            mse, counts for poisson.
        training : bool, default False
            True: batch statistics and dropout, as a training step sees it.
        sample_weight : array-like of shape (n_samples,), optional
            Per-row loss weights (finite, >= 0).
        class_weight : dict, sequence or "balanced", optional
            Per-class loss weights (classification losses only).

        Returns
        -------
        float
            The mean loss.
        """
        X = self._X(X)
        y = self._y(y, X.shape[0])
        sw, cw = self._weights(sample_weight, class_weight, y, X.shape[0])
        with self._lock:
            return float(self._net.loss(X, y, bool(training), sw, cw))

    def gradients(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
                  class_weight: dict | Sequence[float] | str | None = None) -> list[dict]:
        """Gradients of the training loss (penalty included, before clipping);
        changes no parameter.

        Dropout uses the masks of the next step.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input rows.
        y : array-like
            Targets, as for :meth:`loss`.
        sample_weight : array-like of shape (n_samples,), optional
            Per-row loss weights.
        class_weight : dict, sequence or "balanced", optional
            Per-class loss weights (classification losses only).

        Returns
        -------
        list of dict
            Per layer ``{"W": dW, "b": db}``, plus ``"gamma"`` and ``"beta"``
            for batch-normalized layers (copies, the shapes of the parameters).
        """
        X = self._X(X)
        y = self._y(y, X.shape[0])
        sw, cw = self._weights(sample_weight, class_weight, y, X.shape[0])
        net = self._net
        with self._lock:
            net.compute_gradients(X, y, sw, cw)
            out = []
            for i in range(net.num_layers):
                g = {"W": net.grad(i, "W").copy(), "b": net.grad(i, "b").copy()}
                if self._layers[i].batch_norm:
                    g["gamma"] = net.grad(i, "gamma").copy()
                    g["beta"] = net.grad(i, "beta").copy()
                out.append(g)
            return out

    def train_step(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
                   class_weight: dict | Sequence[float] | str | None = None) -> float:
        """One optimizer step on this batch, with clipping and the current
        learning rate.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The batch. Arrays already in the core's layout (C-contiguous, the
            model's dtype; int32/int64 class ids) go to the core unconverted.
        y : array-like
            Its targets, as for :meth:`loss`.
        sample_weight : array-like of shape (n_samples,), optional
            Per-row loss weights.
        class_weight : dict, sequence or "balanced", optional
            Per-class loss weights (classification losses only).

        Returns
        -------
        float
            The batch's loss, before the step.

        Raises
        ------
        FloatingPointError
            When the loss or a gradient is not finite; the parameters are
            left as they were.
        """
        sw = cw = None
        if (self._net is None or sample_weight is not None or class_weight is not None
                or not _core_layout(X, y, self.dtype, self.loss_name)):
            X = self._X(X)
            y = self._y(y, X.shape[0])
            sw, cw = self._weights(sample_weight, class_weight, y, X.shape[0])
        # else: already in the core's layout; the core checks the values
        # (finite X, class ids in range, target ranges) in one pass, which for
        # a small network saves a good part of the step.
        with self._lock:
            r = self._net.train_step(X, y, sw, cw)
        if not r.ok:
            raise FloatingPointError(
                f"train_step: {self._divergence(r.loss, r.bad_layer)} The parameters were left "
                f"as they were. {_REMEDIES}"
            )
        return float(r.loss)

    def _divergence(self, loss_value, bad_layer):
        norms = self._net.grad_norms()
        if bad_layer is None or bad_layer < 0:
            where = "no gradient could be computed"
        elif not np.isfinite(norms[bad_layer]):
            where = f"the gradient of layer {bad_layer} ({self._layers[bad_layer]!r}) is not finite"
        else:
            where = (f"layer {bad_layer} ({self._layers[bad_layer]!r}) has the largest gradient "
                     f"norm, {norms[bad_layer]:.3g}")
        return f"the loss is {loss_value} and {where}."

    # -- state snapshots (early stopping) -----------------------------------
    def _running_stats(self):
        """{name: view} of every batch-norm running statistic."""
        out = {}
        for i in range(self._net.num_layers):
            if self._layers[i].batch_norm:
                out[f"running_mean_{i}"] = self._net.running_mean(i)
                out[f"running_var_{i}"] = self._net.running_var(i)
        return out

    def _snapshot(self):
        stats = {k: v.copy() for k, v in self._running_stats().items()}
        return self._net.params_flat().copy(), stats

    def _restore(self, snap):
        params, stats = snap
        with self._lock:
            self._net.params_flat()[...] = params
            for key, view in self._running_stats().items():
                view[...] = stats[key]

    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int = 10, batch_size: int = 32,
            shuffle: bool = True, validation_data: tuple | None = None,
            validation_split: float = 0.0, early_stopping: EarlyStopping | int | None = None,
            verbose: int | str = 1, callbacks: Callback | Iterable[Callback] | None = (),
            seed: int | None = None, sample_weight: ArrayLike | None = None,
            class_weight: dict | Sequence[float] | str | None = None,
            comm: Any = None, reduction: str | Any = "reproducible") -> History:
        """Train by mini-batch gradient descent with the compiled optimizer.

        Each epoch runs entirely in the core with the GIL released (shuffle,
        gather, forward, backward, clipping, update, metrics); it returns to
        Python at the epoch's end, or every N batches when a callback sets
        ``every_n_batches``. Ctrl-C stops between two batches
        (KeyboardInterrupt, parameters intact). A second call continues from
        where the first stopped (epoch count, optimizer state, schedule).

        Other Python threads keep running meanwhile. One model trains in one
        thread at a time: ``fit``, ``train_step``, ``gradients`` or
        ``compile`` on this model from another thread raise RuntimeError
        while it runs. ``predict``, ``forward`` and ``loss`` from another
        thread wait until the core returns to Python (the epoch's end, or
        a callback's batch), then run on the weights as they are there; call
        them after ``fit`` returns for the trained model's output.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
            Training rows, checked and converted once. A sparse matrix is
            kept as CSR and densified a whole batch at a time (about 8 MiB),
            never all at once; the model is bitwise the same as with dense X.
        y : array-like
            Targets, as for :meth:`loss`.
        epochs : int, default 10
            Epochs to run (0 runs none).
        batch_size : int, default 32
            Rows per mini-batch; the last batch of an epoch may be smaller.
        shuffle : bool, default True
            Shuffle the rows every epoch (seeded, the same for any thread
            count).
        validation_data : tuple, optional
            ``(X_val, y_val)`` or ``(X_val, y_val, sample_weight_val)``,
            evaluated after every epoch (``val_loss``, ``val_accuracy``).
        validation_split : float, default 0.0
            Instead of validation_data: hold out this last fraction of the
            rows (before shuffling), as Keras does.
        early_stopping : fastmlp.EarlyStopping or int, optional
            An EarlyStopping callback, or an int patience on ``val_loss``
            (``loss`` without validation data).
        verbose : {0, 1, 2, "auto"}, default 1
            0: silent. 1 (or "auto"): on a terminal, a live progress bar per
            epoch (batches, time per step, ETA, running loss; tqdm when
            installed), elsewhere one line per epoch. 2: one line per epoch.
        callbacks : fastmlp.Callback or iterable of Callback, default ()
            Called at the start and end of training, after every epoch, and
            every ``every_n_batches`` batches where a callback sets it.
        seed : int, optional
            Seed of the shuffling; default the model's seed.
        sample_weight : array-like of shape (n_samples,), optional
            Per-row loss weights (Keras' sample_weight).
        class_weight : dict, sequence or "balanced", optional
            ``{class: weight}``, one weight per class, or ``"balanced"``
            (``n / (classes * count)``, counted over the training rows);
            weights the training loss only, as in Keras.
        comm : mpi4py communicator, optional
            Data-parallel training over MPI (:mod:`fastmlp.distributed`):
            every rank calls fit with the same arguments (X may be the same
            array or a ``np.memmap`` of one file on every rank; each rank
            reads only its rows of each batch). ``batch_size`` is the global
            batch, split across the ranks; the gradients are summed over it
            and batch normalization uses its statistics. Only rank 0
            prints. Launch with ``mpiexec -n N python -m mpi4py script.py``.
        reduction : {"reproducible", "fast", "sharded"} or fastmlp.distributed.Reproducible
            With ``comm``: ``"reproducible"`` gives bitwise the same
            parameters for any number of processes; ``"fast"`` is one
            in-place all-reduce per step, equal to a single-process fit up
            to rounding; ``"sharded"`` sums each rank's shard of the
            gradient, steps the optimizer on it and gathers the
            parameters (a 1/N share of the optimizer's work per rank),
            equal to a single-process fit up to rounding.

        Returns
        -------
        History
            What the epochs recorded; also kept as ``model.history``.

        Raises
        ------
        FloatingPointError
            When training diverges; the parameters are those before the
            batch that diverged.
        """
        epochs = check_positive_int(epochs, "epochs", minimum=0)
        batch_size = check_positive_int(batch_size, "batch_size")
        verbose = _progress.check_verbose(verbose)
        if comm is not None:
            return self._fit_distributed(
                comm, reduction, X, y, epochs=epochs, batch_size=batch_size, shuffle=shuffle,
                validation_data=validation_data, validation_split=validation_split,
                early_stopping=early_stopping, verbose=verbose, callbacks=callbacks, seed=seed,
                sample_weight=sample_weight, class_weight=class_weight)
        distributed.check_reduction(reduction)
        split = check_float(validation_split, "validation_split", minimum=0.0, maximum=1.0,
                            max_inclusive=False)
        callbacks = _check_callbacks(callbacks)
        shuffle_seed = self.seed if seed is None else _check_seed(seed)
        data = self._fit_data(X, y, sample_weight, class_weight, validation_data, split)
        if early_stopping is not None:
            callbacks = callbacks + [_early_stopper(early_stopping, data.Xv is not None)]
        self._check_batch_size(batch_size, data.X.shape[0])
        # Each core call claims the network for its own span only; fit claims
        # it for all its epochs, so that another thread's fit or train_step
        # is refused (RuntimeError) instead of running between two chunks.
        # This thread's calls (callbacks included) pass.
        with self._net.training("fit"):
            return self._run_epochs(data, epochs, batch_size, shuffle, shuffle_seed, callbacks,
                                    verbose)

    def _fit_distributed(self, comm, reduction, X, y, *, epochs, batch_size, shuffle,
                         validation_data, validation_split, early_stopping, verbose, callbacks,
                         seed, sample_weight, class_weight):
        """fit over an MPI communicator (fastmlp.distributed)."""
        trainer = distributed.Trainer(self, comm, reduction)
        split = check_float(validation_split, "validation_split", minimum=0.0, maximum=1.0,
                            max_inclusive=False)
        callbacks = _check_callbacks(callbacks)
        shuffle_seed = self.seed if seed is None else _check_seed(seed)
        data = self._fit_data(X, y, sample_weight, class_weight, validation_data, split,
                              lazy=True)
        if early_stopping is not None:
            callbacks = callbacks + [_early_stopper(early_stopping, data.Xv is not None)]
        self._check_batch_size(batch_size, data.X.shape[0])
        fit_args = {"epochs": epochs, "batch_size": batch_size, "shuffle": bool(shuffle),
                    "seed": shuffle_seed, "split": split,
                    "callbacks": [distributed.describe(c) for c in callbacks]}
        trainer.agree(fit_args, data)
        if trainer.rank != 0:
            verbose = 0
        with self._net.training("fit"):
            try:
                history = self._run_epochs(data, epochs, batch_size, shuffle, shuffle_seed,
                                           callbacks, verbose, epoch=trainer.epoch,
                                           sync=trainer)
            except distributed.Diverged:
                trainer.close()
                raise  # the same on every rank: every rank raises it
            except BaseException as e:  # noqa: BLE001 - only this rank may have seen it
                trainer.abort(e)
                raise
            trainer.close()
            return history

    def _check_batch_size(self, batch_size, n):
        """Batch normalization cannot train on a batch of one row."""
        if self._has_batch_norm and (batch_size == 1 or n % batch_size == 1 or n == 1):
            raise ValueError(
                f"batch_size: {batch_size} leaves a last batch of 1 row out of {n}, "
                "which batch normalization cannot train on; choose another batch size"
            )

    def _fit_data(self, X, y, sample_weight, class_weight, validation_data, split, lazy=False):
        """The training and validation arrays, checked and converted once
        (lazy: X only checked for shape and type, its rows converted a batch
        at a time by a data-parallel fit)."""
        if lazy and isinstance(X, np.memmap):
            self._ensure_built(X)
            X = distributed.check_lazy_X(X, self._sizes[0])
        else:
            X = self._X(X, keep_sparse=not lazy)
        y = self._y(y, X.shape[0])
        sw, _ = self._weights(sample_weight, None, y, X.shape[0])
        Xv = yv = swv = None
        if validation_data is not None:
            if split:
                raise ValueError("validation_split: give validation_data or validation_split, not both")
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise TypeError("validation_data: expected a tuple (X_val, y_val) or "
                                "(X_val, y_val, sample_weight_val)")
            Xv = self._X(validation_data[0], name="validation_data[0]", keep_sparse=True)
            yv = self._y(validation_data[1], Xv.shape[0], name="validation_data[1]")
            if len(validation_data) == 3 and validation_data[2] is not None:
                swv, _ = self._weights(validation_data[2], None, yv, Xv.shape[0],
                                       name="validation_data[2]")
        elif split:
            # The last rows, before any shuffling (as Keras holds them out).
            cut = int(X.shape[0] * (1.0 - split))
            if cut <= 0 or cut >= X.shape[0]:
                raise ValueError(
                    f"validation_split: {split} leaves no rows for training or validation "
                    f"out of {X.shape[0]}"
                )
            X, Xv, y, yv = X[:cut], X[cut:], y[:cut], y[cut:]
            if isinstance(Xv, np.memmap):
                Xv = self._X(Xv, name="X")  # the held-out rows, converted once
            if sw is not None:
                sw, swv = sw[:cut], sw[cut:]
        # After the split: "balanced" counts the training rows only.
        _, cw = self._weights(None, class_weight, y, X.shape[0])
        return _FitData(X, y, sw, cw, Xv, yv, swv)

    def _run_epochs(self, data, epochs, batch_size, shuffle, shuffle_seed, callbacks, verbose,
                    epoch=None, sync=None):
        """The epoch loop: the core trains (epoch(...) one epoch; default
        _train_epoch), Python records and calls back. sync (a data-parallel
        fit's trainer): each epoch's record is rank 0's, and a stop asked on
        any rank stops every rank."""
        epoch = self._train_epoch if epoch is None else epoch
        net = self._net
        history = History()
        self.history = history
        if self._schedule is not None and not self._schedule_started:
            net.set_lr(self._schedule.start(self._optimizer.lr))
            self._schedule_started = True
        for cb in callbacks:
            cb.on_train_begin(self)
        n_batches = -(-data.X.shape[0] // batch_size)
        report = _progress.reporter(verbose, net, epochs, n_batches)
        completed = False
        try:
            for i in range(epochs):
                t0 = time.perf_counter()
                lr_now = net.optimizer_config().lr
                if report is not None:
                    net.reset_progress()
                    report.begin_epoch(i + 1)
                r, stop = epoch(data, batch_size, shuffle, shuffle_seed, callbacks)
                record = None
                if sync is None or sync.rank == 0:
                    record = self._epoch_record(r, data, lr_now)
                    record["time"] = time.perf_counter() - t0
                if sync is not None:
                    # Rank 0's record (its validation, its clock) everywhere, so
                    # that every rank's callbacks and schedule see the same.
                    record = sync.comm.bcast(record, root=0)
                self._epochs_done += 1
                history._record(self._epochs_done, **record)
                if self._schedule is not None:
                    net.set_lr(self._schedule.step(record.get("val_loss", record["loss"])))
                if report is not None:
                    report.end_epoch(i + 1, record, r.batches)
                for cb in callbacks:
                    stop = bool(cb.on_epoch_end(self._epochs_done, dict(record))) or stop
                if sync is not None:
                    stop = sync.any(stop)
                if stop:
                    break
            completed = True
        finally:
            if report is not None:
                report.close()
            # Ctrl-C or divergence: the model keeps the parameters it has now
            # (callbacks see history.interrupted and must not replace them).
            history.interrupted = not completed
            for cb in callbacks:
                cb.on_train_end(self, history)
        return history

    def _train_epoch(self, data, batch_size, shuffle, shuffle_seed, callbacks):
        """One epoch in the core, in chunks when callbacks ask for batch ends
        or X is sparse. Returns (the core's EpochResult, whether a callback
        asked to stop)."""
        net = self._net
        n = data.X.shape[0]
        every = [c.every_n_batches for c in callbacks if c.every_n_batches]
        # Return to Python every gcd(...) batches, so each callback sees every
        # multiple of its own period.
        chunk = math.gcd(*every) if every else -1
        sparse = is_sparse(data.X)
        if sparse:
            # Densify whole batches, about _SPARSE_BLOCK_BYTES at a time, in a
            # number of batches that divides the callbacks' period.
            per = max(1, self._block_rows(batch_size) // batch_size)
            if chunk > 0:
                per = max(d for d in range(1, min(per, chunk) + 1) if chunk % d == 0)
            chunk = per
        perm = _core.permutation(n, shuffle_seed, self._epochs_done) if shuffle else None
        net.reset_unit_activity()
        r = None
        stop = False
        start = 0
        while start < n:
            before = 0 if r is None else r.batches
            if sparse:
                # The same batches, rows and order as dense X would give: rows
                # perm[start:...] gathered here instead of in the core.
                end = min(n, start + chunk * batch_size)
                rows = slice(start, end) if perm is None else perm[start:end]
                X, y = dense_rows(data.X, rows, self.dtype), data.y[rows]
                sw = None if data.sw is None else data.sw[rows]
                at, order = 0, None
            else:
                X, y, sw, at, order = data.X, data.y, data.sw, start, perm
            with self._lock:
                # carry=r: the core continues this epoch's sums, so a chunked
                # epoch gives the same history bitwise.
                r = net.train_epoch(X, y, order, batch_size, at, chunk, sw, data.cw, carry=r)
            if r.diverged:
                bad = r.bad_batch + (start // batch_size if sparse else 0)
                raise FloatingPointError(
                    f"fit: training diverged at epoch {self._epochs_done + 1}, batch "
                    f"{bad + 1}: {self._divergence(r.bad_loss, r.bad_layer)} The "
                    f"parameters are those before that batch. {_REMEDIES}"
                )
            done = r.batches - before
            start += done * batch_size
            if done == 0:
                break
            if every and start < n:
                logs = {"loss": r.loss_sum / max(r.rows, 1)}
                batch_no = start // batch_size
                for cb in callbacks:
                    if cb.every_n_batches and batch_no % cb.every_n_batches == 0:
                        stop = bool(cb.on_batch_end(batch_no, logs)) or stop
                if stop:
                    break
        return r, stop

    def _epoch_record(self, r, data, lr):
        """The History entry of one epoch (time aside)."""
        record = {"loss": r.loss_sum / max(r.rows, 1)}
        if self.is_classifier and r.predictions:
            record["accuracy"] = r.correct / r.predictions
        if data.Xv is not None:
            # As in Keras, class_weight weights training only; the validation
            # rows carry their own sample weights, if any.
            record.update(self._evaluate(data.Xv, data.yv, prefix="val_",
                                         sample_weight=data.swv))
        record["lr"] = lr
        for i, g in enumerate(r.grad_norm_sum):
            record[f"grad_norm_{i}"] = g / max(r.batches, 1)
        # Dead units are counted over this process's rows only: a
        # data-parallel fit leaves them out of the (global) history.
        for i, a in enumerate(self._acts[:-1] if not getattr(r, "distributed", False) else ()):
            if a == "relu":
                record[f"dead_relu_{i}"] = self._net.dead_fraction(i)
        return record

    def _evaluate(self, X, y, prefix="", sample_weight=None, class_weight=None):
        if is_sparse(X):
            if class_weight is not None:
                X = dense_rows(X, slice(None), self.dtype)
            else:
                return self._evaluate_blocks(X, y, prefix, sample_weight)
        with self._lock:
            loss = float(self._net.loss(X, y, False, sample_weight, class_weight))
            proba = self._net.forward(X) if self.is_classifier else None
        return self._metrics(loss, proba, y, prefix)

    def _evaluate_blocks(self, X, y, prefix, sample_weight):
        """_evaluate of a sparse X, a block of rows at a time. Without class
        weights every loss is a sum over rows divided by the row count, so the
        blocks' losses weighted by their rows give the whole set's."""
        step = self._block_rows()
        n = X.shape[0]
        total = 0.0
        parts = []
        for lo in range(0, n, step):
            rows = slice(lo, lo + step)
            block = dense_rows(X, rows, self.dtype)
            sw = None if sample_weight is None else sample_weight[rows]
            with self._lock:
                total += float(self._net.loss(block, y[rows], False, sw, None)) * block.shape[0]
                if self.is_classifier:
                    parts.append(self._net.forward(block))
        proba = np.concatenate(parts, axis=0) if parts else None
        return self._metrics(total / n, proba, y, prefix)

    def _metrics(self, loss, proba, y, prefix):
        out = {prefix + "loss": loss}
        if self.loss_name == "cross_entropy":
            truth = y if y.ndim == 1 else y.argmax(axis=1)
            out[prefix + "accuracy"] = float(np.mean(proba.argmax(axis=1) == truth))
        elif self.loss_name == "binary_cross_entropy":
            out[prefix + "accuracy"] = float(np.mean((proba > 0.5) == (y > 0.5)))
        return out

    # -- persistence ------------------------------------------------------
    def _state(self):
        """(meta, arrays): everything that makes this model, as a JSON-able
        dict and named NumPy arrays (copies). _from_state inverts it; io
        writes and reads the pair."""
        net = self._require_built()
        meta = self._meta()
        arrays = {"params": np.array(net.params_flat())}
        arrays.update({k: np.array(v) for k, v in self._running_stats().items()})
        for j, st in enumerate(net.optimizer_state()):
            arrays[f"optimizer_state_{j}"] = np.array(st)
        return meta, arrays

    def _meta(self):
        """_state()'s JSON-able half, without copying an array."""
        from . import __version__

        net = self._require_built()
        sched = self._schedule
        meta = {
            "fastmlp": __version__,
            "inputs": int(self._sizes[0]),
            "layers": [{"units": layer.units, "activation": layer.activation,
                        "dropout": float(layer.dropout), "batch_norm": bool(layer.batch_norm)}
                       for layer in self._layers],
            "activation": self.activation,
            "loss": self.loss_name,
            "init": self.init,
            "dtype": self.dtype_policy,
            "seed": int(self.seed),
            "optimizer": {"class": type(self._optimizer).__name__,
                          "config": self._optimizer.get_config()},
            "lr": float(net.optimizer_config().lr),
            "regularization": dict(self._reg),
            "schedule": None if sched is None else {
                "class": type(sched).__name__,
                "config": sched.get_config(),
                "state": sched.get_state() if self._schedule_started else None,
            },
            "optimizer_steps": int(net.optimizer_steps),
            "step_count": int(net.step_count),
            "epochs_done": int(self._epochs_done),
        }
        return meta

    @classmethod
    def _from_state(cls, meta, arrays, name="state"):
        """The model _state() described, every array checked against the
        architecture; ValueError naming `name` for anything malformed."""
        try:
            return cls._from_state_unchecked(meta, arrays, name)
        except KeyError as e:
            raise ValueError(f"{name}: incomplete model file (missing {e})") from None
        except (TypeError, AttributeError, IndexError, ValueError, OverflowError) as e:
            if isinstance(e, ValueError) and str(e).startswith(f"{name}: "):
                raise
            # A field of the description that the constructors refuse: their
            # message names the argument, ours names the file.
            raise ValueError(f"{name}: corrupt model description ({e})") from None

    @classmethod
    def _from_state_unchecked(cls, meta, arrays, name):
        bad = _bad_fields(meta, _META_FIELDS)
        if bad is not None:
            raise ValueError(f"{name}: corrupt model description ({bad!r} is missing or "
                             f"of the wrong type: {meta.get(bad)!r})")
        params = arrays.get("params")
        if params is None or params.ndim != 1:
            raise ValueError(f"{name}: the parameter buffer is missing or not 1-D")
        # Before the network is built: a file must hold at least the weights
        # its architecture declares, so the memory that loading it takes is
        # bounded by the data it holds, not by sizes it merely claims.
        declared = _least_parameter_count(meta)
        if declared > params.size:
            raise ValueError(
                f"{name}: the parameter buffer does not match the architecture "
                f"(it declares {declared} parameters, the file holds {params.size})"
            )
        specs = [Dense(l["units"], activation=l["activation"], dropout=l["dropout"],
                       batch_norm=l["batch_norm"]) for l in meta["layers"]]
        model = cls([meta["inputs"]] + specs, activation=meta["activation"], loss=meta["loss"],
                    init=meta["init"], dtype=meta["dtype"], seed=meta["seed"])
        opt = _optim.optimizer_from_config(meta["optimizer"]["class"], meta["optimizer"]["config"])
        sched = None
        if meta["schedule"] is not None:
            sched = _optim.schedule_from_config(meta["schedule"]["class"],
                                                meta["schedule"]["config"])
        reg = meta["regularization"]
        model.compile(optimizer=opt, l1=reg["l1"], l2=reg["l2"], clip_norm=reg["clip_norm"],
                      clip_value=reg["clip_value"], lr_schedule=sched)
        net = model._net
        flat = net.params_flat()
        if params.shape != flat.shape or params.dtype != flat.dtype:
            raise ValueError(f"{name}: the parameter buffer does not match the architecture")
        if not np.isfinite(params).all():
            raise ValueError(f"{name}: the parameters contain NaN or infinity")
        stats = model._running_stats()
        states = net.optimizer_state()
        # Exactly what _state() writes: an extra array (optimizer state of
        # another optimizer, statistics of a layer without batch norm) means
        # the description and the arrays disagree.
        expected = {"params", *stats, *(f"optimizer_state_{j}" for j in range(len(states)))}
        if set(arrays) != expected:
            extra = sorted(set(arrays) - expected)
            missing = sorted(expected - set(arrays))
            raise ValueError(f"{name}: the arrays do not match the description "
                             f"(unexpected {extra}, missing {missing})")
        for key, dst in stats.items():
            src = arrays[key]
            if src.shape != dst.shape or src.dtype != dst.dtype or not np.isfinite(src).all():
                raise ValueError(f"{name}: {key} has the wrong shape or dtype, or is not finite")
            if key.startswith("running_var") and (src < 0).any():
                raise ValueError(f"{name}: {key} has negative variances")
        for j, st in enumerate(states):
            src = arrays[f"optimizer_state_{j}"]
            if src.shape != st.shape or src.dtype != st.dtype:
                raise ValueError(f"{name}: optimizer state {j} has the wrong shape or dtype")
            if not np.isfinite(src).all():
                raise ValueError(f"{name}: optimizer state {j} contains NaN or infinity")
        for key in ("optimizer_steps", "step_count", "epochs_done"):
            v = meta.get(key)
            # The core keeps the counters as int64.
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**63:
                raise ValueError(f"{name}: {key} must be a count >= 0, got {v!r}")
        lr = meta.get("lr")
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 <= lr < np.inf:
            raise ValueError(f"{name}: lr must be a finite number >= 0, got {lr!r}")
        # Everything checked: now the copies.
        flat[...] = params
        for key, dst in model._running_stats().items():
            dst[...] = arrays[key]
        for j, st in enumerate(states):
            st[...] = arrays[f"optimizer_state_{j}"]
        net.optimizer_steps = meta["optimizer_steps"]
        net.step_count = meta["step_count"]
        net.set_lr(meta["lr"])
        model._epochs_done = meta["epochs_done"]
        if sched is not None and meta["schedule"]["state"] is not None:
            sched.set_state(meta["schedule"]["state"])
            model._schedule_started = True
        return model

    def save(self, path: str | os.PathLike) -> str:
        """Save architecture, parameters, batch-norm statistics, optimizer
        and schedule state to one .npz file (:func:`fastmlp.load` reads it back).

        The file holds arrays and a JSON description, no pickle; a loaded
        model continues training exactly where this one stopped.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write; ``.npz`` is appended when missing.

        Returns
        -------
        str
            The path written.
        """
        with self._lock:
            meta, arrays = self._state()
        return io.save_npz(path, meta, arrays)

    def __getstate__(self):
        if self._net is None:
            state = dict(self.__dict__)
            state.pop("_lock", None)
            return {"unbuilt": state}
        with self._lock:
            meta, arrays = self._state()
        return {"npz": io.to_bytes(meta, arrays)}

    def __setstate__(self, state):
        if isinstance(state, dict) and "unbuilt" in state:
            self.__dict__.update(state["unbuilt"])
            self._lock = threading.RLock()
            return
        blob = state.get("npz") if isinstance(state, dict) else None
        if not isinstance(blob, bytes):
            raise ValueError("state: not the state of a pickled fastmlp model")
        meta, arrays = io.from_bytes(blob, "state")
        self.__dict__.update(MLP._from_state(meta, arrays).__dict__)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predictions for X.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        ndarray
            Class ids (cross_entropy), 0/1 labels (binary_cross_entropy) or
            values (mse; poisson: the predicted means exp(z)). A single
            output column is returned as shape (n_samples,).
        """
        out = self.forward(X)
        if self.loss_name == "cross_entropy":
            return out.argmax(axis=1)
        if self.loss_name == "binary_cross_entropy":
            out = (out > 0.5).astype(np.int64)
        return out[:, 0] if out.shape[1] == 1 else out

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities; classification losses only.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        ndarray of shape (n_samples, n_outputs)
            Softmax rows (cross_entropy) or per-output sigmoid probabilities
            (binary_cross_entropy).
        """
        if not self.is_classifier:
            raise AttributeError("predict_proba: only for cross_entropy and binary_cross_entropy models")
        return self.forward(X)

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """Accuracy for classification, R^2 for mse and poisson (as
        sklearn's MLPRegressor.score, whatever its loss).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
            Input rows.
        y : array-like
            True targets, as for :meth:`loss`.

        Returns
        -------
        float
            The accuracy or the coefficient of determination.
        """
        X = self._X(X)
        y = self._y(y, X.shape[0])
        if self.is_classifier:
            return self._evaluate(X, y)["accuracy"]
        pred = self.forward(X)
        ss_res = float(((y - pred) ** 2).sum())
        ss_tot = float(((y - y.mean(axis=0)) ** 2).sum())
        return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0


def _check_callbacks(callbacks):
    if callbacks is None:
        return []
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    out = list(callbacks)
    for i, cb in enumerate(out):
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks[{i}]: expected an fm.callbacks.Callback, got {cb!r}")
        if cb.every_n_batches is not None:
            check_positive_int(cb.every_n_batches, f"callbacks[{i}].every_n_batches")
    return out


_ID_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


def _core_layout(X, y, dtype, loss):
    """True when X and y can go to the core as they are: C-contiguous arrays
    of the model's dtype, class ids as int32/int64 (cross_entropy) or 2-D
    targets. Shapes and values are then checked by the core."""
    if type(X) is not np.ndarray or type(y) is not np.ndarray:
        return False
    if X.dtype != dtype or X.ndim != 2 or not X.flags.c_contiguous or not y.flags.c_contiguous:
        return False
    if y.ndim == 1:
        return loss == "cross_entropy" and y.dtype in _ID_DTYPES
    return y.ndim == 2 and y.dtype == dtype


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_str(v):
    return isinstance(v, str)


def _or_none(check):
    return lambda v: v is None or check(v)


def _dict_of(fields):
    return lambda v: isinstance(v, dict) and _bad_fields(v, fields) is None


# The JSON types of the description _state() writes. The constructors check
# values but take some types loosely (Dense keeps bool(batch_norm), so -1 or
# "no" is a batch-norm layer): a file whose types were edited would load as
# something it does not say.
_LAYER_FIELDS = {"units": _is_int, "activation": _or_none(_is_str), "dropout": _is_num,
                 "batch_norm": lambda v: isinstance(v, bool)}
_META_FIELDS = {
    "inputs": _is_int,
    "layers": lambda v: isinstance(v, list) and len(v) > 0
    and all(isinstance(l, dict) and _bad_fields(l, _LAYER_FIELDS) is None for l in v),
    "activation": _or_none(_is_str),
    "loss": _is_str,
    "init": _is_str,
    "dtype": _is_str,
    "seed": _is_int,
    "optimizer": _dict_of({"class": _is_str, "config": lambda v: isinstance(v, dict)}),
    "lr": _is_num,
    "regularization": _dict_of({"l1": _is_num, "l2": _is_num, "clip_norm": _or_none(_is_num),
                                "clip_value": _or_none(_is_num)}),
    "schedule": _or_none(_dict_of({"class": _is_str, "config": lambda v: isinstance(v, dict),
                                   "state": _or_none(lambda v: isinstance(v, dict))})),
    "optimizer_steps": _is_int,
    "step_count": _is_int,
    "epochs_done": _is_int,
}


def _bad_fields(d, fields):
    """The first field of `d` that is missing or of the wrong JSON type, or None."""
    for key, ok in fields.items():
        if key not in d or not ok(d[key]):
            return key
    return None


def _least_parameter_count(meta):
    """The weights and biases alone of the architecture `meta` describes (the
    core's buffer adds padding and batch-norm parameters); 0 where a size is
    not a positive int, which the constructor then refuses."""
    try:
        fan_in = meta["inputs"]
        units = [layer["units"] for layer in meta["layers"]]
    except (KeyError, TypeError, IndexError):
        return 0
    total = 0
    for u in units:
        if isinstance(fan_in, bool) or isinstance(u, bool) or not isinstance(fan_in, int) \
                or not isinstance(u, int) or fan_in < 1 or u < 1:
            return 0
        total += (fan_in + 1) * u
        fan_in = u
    return total


def load(path: str | os.PathLike) -> MLP:
    """The model saved at `path` by :meth:`MLP.save`, ready to predict or train on.

    Parameters
    ----------
    path : str or os.PathLike
        The .npz file (the suffix may be left out).

    Returns
    -------
    MLP
        The model, with its optimizer and schedule state: training continues
        exactly where the saved model stopped.

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    ValueError
        When the file is not a fastmlp model file, or is corrupt.
    """
    meta, arrays = io.load_npz(path)
    return MLP._from_state(meta, arrays, "path")


@dataclass
class _FitData:
    """fit's arrays, checked and in the model's dtype: training rows, their
    loss weights, and the validation rows (None without)."""

    X: np.ndarray
    y: np.ndarray
    sw: np.ndarray | None
    cw: np.ndarray | None
    Xv: np.ndarray | None
    yv: np.ndarray | None
    swv: np.ndarray | None


def _early_stopper(early_stopping, have_validation):
    """fit's early_stopping argument as a callback."""
    if isinstance(early_stopping, EarlyStopping):
        stopper = early_stopping
    else:
        patience = check_positive_int(early_stopping, "early_stopping", minimum=0)
        stopper = EarlyStopping("val_loss" if have_validation else "loss", patience)
    if stopper.monitor.startswith("val_") and not have_validation:
        raise ValueError(
            f"early_stopping: monitors {stopper.monitor!r} but fit has no validation data; "
            "give validation_data or validation_split, or monitor 'loss'"
        )
    return stopper
