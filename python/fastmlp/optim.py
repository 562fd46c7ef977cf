"""Optimizers and learning-rate schedules, with torch.optim's rules and defaults.

Optimizers are configured here and run by the core, one fused pass over the
flat parameter buffer (csrc/optim/optimizer.h; the formulas are in
fastmlp.reference.optimizer_step and its helpers). Each one is a small value
object: ``get_config()`` gives its constructor arguments (JSON-able, for
save/load, see ``optimizer_from_config``) and ``_core_config()`` the
``_core.OptConfig`` the core reads.

Schedules set the learning rate once per epoch, as torch.optim.lr_scheduler
defines them, and are driven by the model::

    lr = sched.start(base_lr)       # the rate for epoch 0
    for each epoch:
        train with lr
        lr = sched.step(metric)     # the rate for the next epoch

``get_state()``/``set_state()`` save and resume a schedule mid-run.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from . import _core
from ._validation import check_float, check_positive_int


def _check_eps(eps):
    # Adam, RMSprop and Adagrad divide by (root + eps): with eps = 0 a parameter
    # whose gradient has always been zero would become 0/0. Unlike torch, which
    # lets that NaN through, eps must be positive (and non-zero in float32).
    return check_float(eps, "eps", minimum=1e-37)

# The fields of the core's OptConfig (csrc/optim/optimizer.h, FASTMLP_OPT_FIELDS),
# the one Python list of them; tests/test_boundary.py checks that the two agree.
CORE_FIELDS = (
    "lr",
    "weight_decay",
    "momentum",
    "dampening",
    "nesterov",
    "beta1",
    "beta2",
    "amsgrad",
    "eps",
    "alpha",
    "centered",
    "lr_decay",
    "initial_accumulator",
)


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def _check_lr(lr):
    # torch accepts lr = 0; a model that never moves is always a mistake here.
    return check_float(lr, "lr", minimum=0.0, min_inclusive=False)


def _repr_value(v):
    return repr(tuple(v)) if isinstance(v, list) else repr(v)


def _from_config(registry, what, class_name, config):
    if not isinstance(class_name, str):
        raise TypeError(f"class_name: expected a string, got {class_name!r}")
    cls = registry.get(class_name)
    if cls is None:
        raise ValueError(
            f"class_name: expected one of {sorted(registry)} ({what}), got {class_name!r}"
        )
    if not isinstance(config, dict):
        raise TypeError(f"config: expected a dict of {class_name} arguments, got {config!r}")
    params = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(config) - params)
    if unknown:
        raise ValueError(
            f"config: unknown argument {unknown[0]!r} for {class_name} "
            f"(expected some of {sorted(params)})"
        )
    return cls(**config)


# ---------------------------------------------------------------------------
# Optimizers
# ---------------------------------------------------------------------------


class Optimizer:
    """Base class: a named set of hyper-parameters that the core runs.

    Subclasses define ``_kind`` (a name of ``_core.OptimizerKind``),
    ``get_config()`` (the constructor's arguments) and ``_core_fields()``
    (those arguments under the names of CORE_FIELDS).
    """

    _kind: str = ""

    def get_config(self) -> dict:
        """The constructor's arguments, JSON-able (``type(self)(**get_config())``
        rebuilds the optimizer; save/load use it).

        Returns
        -------
        dict
            {argument: value}.
        """
        raise NotImplementedError

    def _core_fields(self) -> dict:
        raise NotImplementedError

    def _core_config(self):
        """The core's validated ``_core.OptConfig`` for these arguments."""
        return _core.OptConfig(kind=_core.OptimizerKind.__members__[self._kind],
                               **self._core_fields())

    @property
    def state_count(self) -> int:
        """State buffers the optimizer keeps, each as long as the parameters."""
        return int(_core.optimizer_state_count(self._core_config()))


    def __repr__(self):
        args = ", ".join(f"{k}={_repr_value(v)}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD.

    ``g = grad + weight_decay * p``; with momentum: ``buf = g`` on the first
    step, ``momentum * buf + (1 - dampening) * g`` after; the step uses
    ``g + momentum * buf`` (Nesterov) or ``buf``; ``p -= lr * step``.
    Formulas: :func:`fastmlp.reference.sgd_step`.

    Parameters
    ----------
    lr : float, default 0.01
        Learning rate, > 0.
    momentum : float, default 0.0
        Momentum factor.
    nesterov : bool, default False
        Nesterov momentum (needs momentum > 0 and dampening 0).
    weight_decay : float, default 0.0
        Coupled L2 decay, added to the gradient.
    dampening : float, default 0.0
        Dampening of the momentum's gradient term.
    """

    _kind = "sgd"

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0) -> None:
        self.lr = _check_lr(lr)
        self.momentum = check_float(momentum, "momentum", minimum=0.0)
        self.nesterov = _check_bool(nesterov, "nesterov")
        self.weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
        self.dampening = check_float(dampening, "dampening")
        if self.nesterov and (self.momentum == 0.0 or self.dampening != 0.0):
            raise ValueError(
                "nesterov: Nesterov momentum requires momentum > 0 and dampening 0, got "
                f"momentum={self.momentum}, dampening={self.dampening}"
            )

    def get_config(self) -> dict:
        """The constructor's arguments, JSON-able (``type(self)(**get_config())``
        rebuilds the optimizer; save/load use it).

        Returns
        -------
        dict
            {argument: value}.
        """
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
            "dampening": self.dampening,
        }

    def _core_fields(self):
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "dampening": self.dampening,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }


def _check_betas(betas):
    try:
        b1, b2 = betas
    except (TypeError, ValueError):
        raise TypeError(f"betas: expected a pair (beta1, beta2), got {betas!r}") from None
    out = []
    for i, b in enumerate((b1, b2)):
        v = check_float(b, f"betas[{i}]", minimum=0.0, maximum=1.0, max_inclusive=False)
        out.append(v)
    return tuple(out)


class Adam(Optimizer):
    """Adam, as torch.optim.Adam.

    Bias-corrected moments, eps outside the root, coupled L2 weight decay
    (added to the gradient); amsgrad divides by the largest second moment so
    far. Formulas: :func:`fastmlp.reference.adam_step`.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, > 0.
    betas : tuple of (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates, in [0, 1).
    eps : float, default 1e-8
        Added to the root of the second moment, > 0.
    weight_decay : float, default 0.0
        Coupled L2 decay, added to the gradient.
    amsgrad : bool, default False
        Divide by the largest second moment so far (AMSGrad).
    """

    _kind = "adam"

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        self.lr = _check_lr(lr)
        self.betas = _check_betas(betas)
        self.eps = _check_eps(eps)
        self.weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
        self.amsgrad = _check_bool(amsgrad, "amsgrad")

    def get_config(self) -> dict:
        """The constructor's arguments, JSON-able (``type(self)(**get_config())``
        rebuilds the optimizer; save/load use it).

        Returns
        -------
        dict
            {argument: value}.
        """
        return {
            "lr": self.lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "amsgrad": self.amsgrad,
        }

    def _core_fields(self):
        return {
            "lr": self.lr,
            "beta1": self.betas[0],
            "beta2": self.betas[1],
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "amsgrad": self.amsgrad,
        }


class AdamW(Adam):
    """AdamW, as torch.optim.AdamW: Adam with decoupled weight decay.

    p is scaled by ``1 - lr * weight_decay`` before each step instead of the
    decay entering the gradient. Formulas:
    :func:`fastmlp.reference.adam_step` with ``decoupled=True``.

    Parameters
    ----------
    lr : float, default 1e-3
        Learning rate, > 0.
    betas : tuple of (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates, in [0, 1).
    eps : float, default 1e-8
        Added to the root of the second moment, > 0.
    weight_decay : float, default 1e-2
        Decoupled decay rate.
    amsgrad : bool, default False
        Divide by the largest second moment so far (AMSGrad).
    """

    _kind = "adamw"

    def __init__(self, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class RMSprop(Optimizer):
    """RMSprop, as torch.optim.RMSprop.

    Divide by the root of a running mean of squared gradients (centered: of
    their variance), optional momentum on the normalised step, coupled L2
    decay. Formulas: :func:`fastmlp.reference.rmsprop_step`.

    Parameters
    ----------
    lr : float, default 1e-2
        Learning rate, > 0.
    alpha : float, default 0.99
        Decay rate of the running mean of squared gradients, in [0, 1].
    eps : float, default 1e-8
        Added to the root, > 0.
    weight_decay : float, default 0.0
        Coupled L2 decay, added to the gradient.
    momentum : float, default 0.0
        Momentum on the normalised step.
    centered : bool, default False
        Divide by an estimate of the gradient's variance instead.
    """

    _kind = "rmsprop"

    def __init__(self, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False) -> None:
        self.lr = _check_lr(lr)
        self.alpha = check_float(alpha, "alpha", minimum=0.0, maximum=1.0)
        self.eps = _check_eps(eps)
        self.weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
        self.momentum = check_float(momentum, "momentum", minimum=0.0)
        self.centered = _check_bool(centered, "centered")

    def get_config(self) -> dict:
        """The constructor's arguments, JSON-able (``type(self)(**get_config())``
        rebuilds the optimizer; save/load use it).

        Returns
        -------
        dict
            {argument: value}.
        """
        return {
            "lr": self.lr,
            "alpha": self.alpha,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "momentum": self.momentum,
            "centered": self.centered,
        }

    def _core_fields(self):
        return dict(self.get_config())


class Adagrad(Optimizer):
    """Adagrad, as torch.optim.Adagrad.

    Divide by the root of the sum of all squared gradients so far (starting
    at initial_accumulator_value), step size ``lr / (1 + (t - 1) lr_decay)``,
    coupled L2 decay. Formulas: :func:`fastmlp.reference.adagrad_step`.

    Parameters
    ----------
    lr : float, default 1e-2
        Learning rate, > 0.
    lr_decay : float, default 0.0
        Decay of the step size with the step count.
    weight_decay : float, default 0.0
        Coupled L2 decay, added to the gradient.
    initial_accumulator_value : float, default 0.0
        Starting value of the sum of squared gradients.
    eps : float, default 1e-10
        Added to the root, > 0.
    """

    _kind = "adagrad"

    def __init__(self, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        self.lr = _check_lr(lr)
        self.lr_decay = check_float(lr_decay, "lr_decay", minimum=0.0)
        self.weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
        self.initial_accumulator_value = check_float(
            initial_accumulator_value, "initial_accumulator_value", minimum=0.0
        )
        self.eps = _check_eps(eps)

    def get_config(self) -> dict:
        """The constructor's arguments, JSON-able (``type(self)(**get_config())``
        rebuilds the optimizer; save/load use it).

        Returns
        -------
        dict
            {argument: value}.
        """
        return {
            "lr": self.lr,
            "lr_decay": self.lr_decay,
            "weight_decay": self.weight_decay,
            "initial_accumulator_value": self.initial_accumulator_value,
            "eps": self.eps,
        }

    def _core_fields(self):
        return {
            "lr": self.lr,
            "lr_decay": self.lr_decay,
            "weight_decay": self.weight_decay,
            "initial_accumulator": self.initial_accumulator_value,
            "eps": self.eps,
        }


_OPTIMIZERS = {c.__name__: c for c in (SGD, Adam, AdamW, RMSprop, Adagrad)}


def optimizer_from_config(class_name: str, config: dict[str, Any]) -> Optimizer:
    """The optimizer that ``type(opt).__name__`` and ``opt.get_config()`` describe.

    Parameters
    ----------
    class_name : str
        "SGD", "Adam", "AdamW", "RMSprop" or "Adagrad".
    config : dict
        Constructor arguments, as ``get_config()`` returns them.

    Returns
    -------
    Optimizer
        A new optimizer.
    """
    return _from_config(_OPTIMIZERS, "an fm.optim optimizer", class_name, config)


def optimizer_by_name(name: str) -> Optimizer:
    """The optimizer called `name`, with its default settings.

    Parameters
    ----------
    name : str
        "sgd", "adam", "adamw", "rmsprop" or "adagrad", in any case.

    Returns
    -------
    Optimizer
        A new optimizer.
    """
    if not isinstance(name, str):
        raise TypeError(f"optimizer: expected an fm.optim optimizer or its name, got {name!r}")
    table = {cls.__name__.lower(): cls for cls in _OPTIMIZERS.values()}
    key = name.lower()
    if key not in table:
        raise ValueError(f"optimizer: expected an fm.optim optimizer or one of {sorted(table)}, "
                         f"got {name!r}")
    return table[key]()


# ---------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------


class LRSchedule:
    """Base class of the per-epoch learning-rate schedules.

    Linear warmup (``warmup_epochs`` = W > 0): epoch e < W trains with about
    base_lr * (e + 1) / (W + 1), rising to base_lr, and the schedule proper
    starts at epoch W as if that were its epoch 0. Precisely, the rates are
    those of torch::

        SequentialLR(opt, [LinearLR(opt, start_factor=1 / (W + 1), end_factor=1.0,
                                    total_iters=W),
                           schedule],
                     milestones=[W])

    including LinearLR's recursive updates during warmup and SequentialLR's
    closed-form restart of the schedule at epoch W. ReduceLROnPlateau, which
    torch cannot chain, warms up the same way and then behaves as a fresh
    torch ReduceLROnPlateau created at epoch W with the rate base_lr: it
    monitors the metrics of epochs W, W + 1, ... and ignores those of the
    warmup epochs.

    Parameters
    ----------
    warmup_epochs : int, default 0
        Epochs of linear warmup before the schedule proper.
    """

    requires_metric = False

    def __init__(self, warmup_epochs: int = 0) -> None:
        self.warmup_epochs = check_positive_int(warmup_epochs, "warmup_epochs", minimum=0)
        self._state = None

    # -- the interface the model uses ---------------------------------------

    def start(self, base_lr: float) -> float:
        """Reset to epoch 0 with the optimizer's rate.

        Parameters
        ----------
        base_lr : float
            The optimizer's learning rate.

        Returns
        -------
        float
            The rate for epoch 0.
        """
        base_lr = check_float(base_lr, "base_lr", minimum=0.0)
        w = self.warmup_epochs
        # torch's LinearLR at its epoch 0: lr * start_factor.
        lr = base_lr * (1.0 / (w + 1)) if w > 0 else base_lr
        self._state = {"epoch": 0, "base_lr": base_lr, "lr": lr, **self._fresh_state()}
        return lr

    def step(self, metric: float | None = None) -> float:
        """Advance one epoch.

        Parameters
        ----------
        metric : float, optional
            The monitored value (e.g. the validation loss) of the epoch just
            finished: required by ReduceLROnPlateau, ignored by the others.

        Returns
        -------
        float
            The rate for the next epoch.
        """
        s = self._require_started("step")
        metric = self._check_metric(metric)
        s["epoch"] += 1
        e, w = s["epoch"], self.warmup_epochs
        if e < w:
            s["lr"] = self._warmup_lr(s["lr"], e)
        elif e == w:
            s["lr"] = self._restart_lr(s["base_lr"])
        else:
            s["lr"] = self._next_lr(s, e - w, metric)
        return s["lr"]

    @property
    def lr(self) -> float | None:
        """The current epoch's rate (None before start())."""
        return None if self._state is None else self._state["lr"]

    @property
    def epoch(self) -> int | None:
        """The current epoch's 0-based index (None before start())."""
        return None if self._state is None else self._state["epoch"]

    def get_state(self) -> dict:
        """Where the schedule stands, JSON-able ({} before start())."""
        return {} if self._state is None else dict(self._state)

    def set_state(self, state: dict[str, Any]) -> None:
        """Resume from a :meth:`get_state` result.

        Parameters
        ----------
        state : dict
            What ``get_state()`` of a schedule with the same config returned
            (``{}``: not started).
        """
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict from get_state(), got {state!r}")
        if not state:
            self._state = None
            return
        expected = {"epoch", "base_lr", "lr", *self._fresh_state()}
        if set(state) != expected:
            raise ValueError(
                f"state: expected the keys {sorted(expected)} of {type(self).__name__}."
                f"get_state(), got {sorted(state)}"
            )
        s = {
            "epoch": check_positive_int(state["epoch"], "state['epoch']", minimum=0),
            "base_lr": check_float(state["base_lr"], "state['base_lr']", minimum=0.0),
            "lr": check_float(state["lr"], "state['lr']"),
        }
        s.update(self._check_extra_state(state))
        self._state = s

    # -- configuration ------------------------------------------------------

    def get_config(self) -> dict:
        """The constructor's arguments, JSON-able (save/load use them).

        Returns
        -------
        dict
            {argument: value}.
        """
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    __hash__ = None

    # -- what subclasses define ---------------------------------------------

    def _fresh_state(self) -> dict:
        return {}

    def _check_extra_state(self, state) -> dict:
        return {}

    def _check_metric(self, metric):
        if metric is None:
            return None
        return check_float(metric, "metric")

    def _restart_lr(self, base_lr):
        """Epoch W: torch's SequentialLR steps the schedule with epoch=0, which
        takes its closed form at 0."""
        raise NotImplementedError

    def _next_lr(self, s, k, metric):
        """The rate of the schedule's own epoch k >= 1, from the state (torch's
        recursive get_lr, reading the current rate s["lr"])."""
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------

    def _require_started(self, what):
        if self._state is None:
            raise ValueError(f"{what}: call start(base_lr) first")
        return self._state

    def _warmup_lr(self, lr, e):
        # torch LinearLR.get_lr at last_epoch e (0 < e <= total_iters), verbatim.
        w = self.warmup_epochs
        start, end = 1.0 / (w + 1), 1.0
        return lr * (1.0 + (end - start) / (w * start + (e - 1) * (end - start)))


class StepLR(LRSchedule):
    """Multiply the rate by gamma every step_size epochs (torch.optim.lr_scheduler.StepLR).

    Epoch k trains with ``base_lr * gamma ** (k // step_size)``.

    Parameters
    ----------
    step_size : int
        Epochs between two decays.
    gamma : float, default 0.1
        The factor, > 0.
    warmup_epochs : int, default 0
        Epochs of linear warmup first (see :class:`LRSchedule`).
    """

    def __init__(self, step_size: int, gamma: float = 0.1, warmup_epochs: int = 0) -> None:
        self.step_size = check_positive_int(step_size, "step_size")
        self.gamma = check_float(gamma, "gamma", minimum=0.0, min_inclusive=False)
        super().__init__(warmup_epochs)

    def get_config(self) -> dict:
        """The constructor's arguments.

        Returns
        -------
        dict
            {argument: value}.
        """
        return {"step_size": self.step_size, "gamma": self.gamma,
                "warmup_epochs": self.warmup_epochs}

    def _restart_lr(self, base_lr):
        return base_lr * self.gamma ** (0 // self.step_size)

    def _next_lr(self, s, k, metric):
        if k % self.step_size != 0:
            return s["lr"]
        return s["lr"] * self.gamma


class ExponentialLR(LRSchedule):
    """Multiply the rate by gamma every epoch (torch.optim.lr_scheduler.ExponentialLR).

    Epoch k trains with ``base_lr * gamma ** k``.

    Parameters
    ----------
    gamma : float
        The factor, > 0.
    warmup_epochs : int, default 0
        Epochs of linear warmup first (see :class:`LRSchedule`).
    """

    def __init__(self, gamma: float, warmup_epochs: int = 0) -> None:
        self.gamma = check_float(gamma, "gamma", minimum=0.0, min_inclusive=False)
        super().__init__(warmup_epochs)

    def get_config(self) -> dict:
        """The constructor's arguments.

        Returns
        -------
        dict
            {argument: value}.
        """
        return {"gamma": self.gamma, "warmup_epochs": self.warmup_epochs}

    def _restart_lr(self, base_lr):
        return base_lr * self.gamma**0

    def _next_lr(self, s, k, metric):
        return s["lr"] * self.gamma


class CosineAnnealingLR(LRSchedule):
    """Cosine annealing from base_lr to eta_min over T_max epochs
    (torch.optim.lr_scheduler.CosineAnnealingLR, stepped without an epoch)::

        lr_k = eta_min + (base_lr - eta_min) * (1 + cos(pi * k / T_max)) / 2

    computed, as torch does, by a recursion from the previous rate; past
    T_max the rate rises again along the same cosine (period 2 * T_max).

    Parameters
    ----------
    T_max : int
        Epochs from base_lr down to eta_min.
    eta_min : float, default 0.0
        The lowest rate.
    warmup_epochs : int, default 0
        Epochs of linear warmup first (see :class:`LRSchedule`).
    """

    def __init__(self, T_max: int, eta_min: float = 0.0, warmup_epochs: int = 0) -> None:
        self.T_max = check_positive_int(T_max, "T_max")
        self.eta_min = check_float(eta_min, "eta_min", minimum=0.0)
        super().__init__(warmup_epochs)

    def get_config(self) -> dict:
        """The constructor's arguments.

        Returns
        -------
        dict
            {argument: value}.
        """
        return {"T_max": self.T_max, "eta_min": self.eta_min,
                "warmup_epochs": self.warmup_epochs}

    def _restart_lr(self, base_lr):
        return self.eta_min + (base_lr - self.eta_min) * (
            1 + math.cos(math.pi * 0 / self.T_max)
        ) / 2

    def _next_lr(self, s, k, metric):
        t, eta_min, lr = self.T_max, self.eta_min, s["lr"]
        if (k - 1 - t) % (2 * t) == 0:
            # The step out of the minimum, where the ratio below would be 0/0.
            return lr + (s["base_lr"] - eta_min) * (1 - math.cos(math.pi / t)) / 2
        return (
            (1 + math.cos(math.pi * k / t)) / (1 + math.cos(math.pi * (k - 1) / t))
            * (lr - eta_min)
            + eta_min
        )


class ReduceLROnPlateau(LRSchedule):
    """Divide the rate when a monitored metric stops improving
    (torch.optim.lr_scheduler.ReduceLROnPlateau, one parameter group).

    After each epoch, step(metric) compares the metric with the best so far:
    better means below best * (1 - threshold) (mode "min", threshold_mode
    "rel"), below best - threshold ("abs"), or above best * (1 + threshold) /
    best + threshold in mode "max". After more than ``patience`` epochs in a
    row without improvement the rate becomes max(lr * factor, min_lr) (unless
    that changes it by eps or less), and the next ``cooldown`` epochs count no
    bad epochs. With warmup, see :class:`LRSchedule`. :meth:`fastmlp.MLP.fit`
    passes it the epoch's ``val_loss`` (``loss`` without validation data).

    Parameters
    ----------
    mode : {"min", "max"}, default "min"
        Whether the metric should fall or rise.
    factor : float, default 0.1
        The factor the rate is multiplied by, in [0, 1).
    patience : int, default 10
        Epochs without improvement tolerated.
    threshold : float, default 1e-4
        The least improvement that counts.
    threshold_mode : {"rel", "abs"}, default "rel"
        Whether threshold is relative to the best value or absolute.
    cooldown : int, default 0
        Epochs after a reduction during which bad epochs do not count.
    min_lr : float, default 0.0
        The rate never goes below this.
    eps : float, default 1e-8
        Reductions smaller than this are skipped.
    warmup_epochs : int, default 0
        Epochs of linear warmup first (see :class:`LRSchedule`).
    """

    requires_metric = True

    def __init__(self, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float = 0.0, eps: float = 1e-8, warmup_epochs: int = 0) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
        self.mode = mode
        self.factor = check_float(factor, "factor", minimum=0.0, maximum=1.0,
                                  max_inclusive=False)
        self.patience = check_positive_int(patience, "patience", minimum=0)
        self.threshold = check_float(threshold, "threshold", minimum=0.0)
        if threshold_mode not in ("rel", "abs"):
            raise ValueError(f"threshold_mode: expected 'rel' or 'abs', got {threshold_mode!r}")
        self.threshold_mode = threshold_mode
        self.cooldown = check_positive_int(cooldown, "cooldown", minimum=0)
        self.min_lr = check_float(min_lr, "min_lr", minimum=0.0)
        self.eps = check_float(eps, "eps", minimum=0.0)
        super().__init__(warmup_epochs)

    def get_config(self) -> dict:
        """The constructor's arguments.

        Returns
        -------
        dict
            {argument: value}.
        """
        return {
            "mode": self.mode,
            "factor": self.factor,
            "patience": self.patience,
            "threshold": self.threshold,
            "threshold_mode": self.threshold_mode,
            "cooldown": self.cooldown,
            "min_lr": self.min_lr,
            "eps": self.eps,
            "warmup_epochs": self.warmup_epochs,
        }

    def _fresh_state(self):
        # best None: no metric seen yet (torch's mode_worse, +-inf).
        return {"best": None, "num_bad_epochs": 0, "cooldown_counter": 0}

    def _check_extra_state(self, state):
        best = state["best"]
        return {
            "best": None if best is None else check_float(best, "state['best']"),
            "num_bad_epochs": check_positive_int(state["num_bad_epochs"],
                                                 "state['num_bad_epochs']", minimum=0),
            "cooldown_counter": check_positive_int(state["cooldown_counter"],
                                                   "state['cooldown_counter']", minimum=0),
        }

    def _check_metric(self, metric):
        if metric is None:
            raise ValueError(
                "metric: ReduceLROnPlateau.step needs the monitored value of the epoch just "
                "finished, got None"
            )
        return check_float(metric, "metric")

    def _is_better(self, a, best):
        # torch's _is_better, verbatim (best = +-inf before the first metric).
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < best - self.threshold
        if self.threshold_mode == "rel":
            return a > best * (self.threshold + 1.0)
        return a > best + self.threshold

    def _restart_lr(self, base_lr):
        return base_lr

    def _next_lr(self, s, k, metric):
        best = s["best"]
        if best is None:
            best = math.inf if self.mode == "min" else -math.inf
        if self._is_better(metric, best):
            s["best"] = metric
            s["num_bad_epochs"] = 0
        else:
            s["num_bad_epochs"] += 1
        if s["cooldown_counter"] > 0:
            s["cooldown_counter"] -= 1
            s["num_bad_epochs"] = 0  # bad epochs in cooldown do not count
        lr = s["lr"]
        if s["num_bad_epochs"] > self.patience:
            new_lr = max(lr * self.factor, self.min_lr)
            if lr - new_lr > self.eps:
                lr = new_lr
            s["cooldown_counter"] = self.cooldown
            s["num_bad_epochs"] = 0
        return lr


_SCHEDULES = {c.__name__: c for c in (StepLR, ExponentialLR, CosineAnnealingLR,
                                      ReduceLROnPlateau)}


def schedule_from_config(class_name: str, config: dict[str, Any]) -> LRSchedule:
    """The schedule that ``type(sched).__name__`` and ``sched.get_config()`` describe.

    Parameters
    ----------
    class_name : str
        "StepLR", "ExponentialLR", "CosineAnnealingLR" or "ReduceLROnPlateau".
    config : dict
        Constructor arguments, as ``get_config()`` returns them.

    Returns
    -------
    LRSchedule
        A new schedule (not started).
    """
    return _from_config(_SCHEDULES, "an fm.optim learning-rate schedule", class_name, config)


__all__ = [
    "SGD",
    "optimizer_by_name",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRSchedule",
    "Optimizer",
    "RMSprop",
    "ReduceLROnPlateau",
    "StepLR",
    "optimizer_from_config",
    "schedule_from_config",
]
