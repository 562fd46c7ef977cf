"""Optimizers, configured here and run by the core in one fused pass over the
flat parameter buffer. Update rules and defaults are torch.optim's.

Only SGD (with momentum, Nesterov and coupled weight decay) exists so far;
the adaptive optimizers and the learning-rate schedules of the design come
with the training-engine work.
"""

from __future__ import annotations

from ._validation import check_float


class Optimizer:
    """Base class: a named set of hyper-parameters."""

    def get_config(self) -> dict:
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


class SGD(Optimizer):
    """Stochastic gradient descent, as torch.optim.SGD (dampening 0).

    g = grad + weight_decay * p; with momentum: buf = g on the first step,
    momentum * buf + g after; the step uses g + momentum * buf (Nesterov) or
    buf; p -= lr * step.
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        self.lr = check_float(lr, "lr", minimum=0.0, min_inclusive=False)
        self.momentum = check_float(momentum, "momentum", minimum=0.0)
        self.nesterov = bool(nesterov)
        self.weight_decay = check_float(weight_decay, "weight_decay", minimum=0.0)
        if self.nesterov and self.momentum == 0.0:
            raise ValueError("nesterov: Nesterov momentum requires momentum > 0")

    def get_config(self):
        return {
            "lr": self.lr,
            "momentum": self.momentum,
            "nesterov": self.nesterov,
            "weight_decay": self.weight_decay,
        }

    def _apply(self, net):
        net.set_sgd(self.lr, self.momentum, self.nesterov, self.weight_decay)


__all__ = ["SGD", "Optimizer"]
