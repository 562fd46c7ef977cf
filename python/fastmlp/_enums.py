"""The kinds the core knows, by name: activations, losses, initializations.

The names and their core values come from the compiled module's enums
(csrc/bindings/bind_types.cpp), so this table cannot drift from the C++ one.
"""

from . import _core

ACTIVATIONS = tuple(_core.Activation.__members__)
LOSSES = tuple(_core.Loss.__members__)
INITS = tuple(_core.Init.__members__)

# "auto" initialisation: He for the ReLU family, Glorot for the rest.
RELU_LIKE = frozenset({"relu", "leaky_relu", "elu", "gelu"})


def _lookup(names, value, arg):
    if not isinstance(value, str):
        raise TypeError(f"{arg}: expected a string, one of {sorted(names)}; got {value!r}")
    key = value.lower()
    if key not in names:
        raise ValueError(f"{arg}: expected one of {list(names)}, got {value!r}")
    return key


def activation_name(value, arg="activation"):
    return _lookup(ACTIVATIONS, "identity" if value is None else value, arg)


def loss_name(value, arg="loss"):
    return _lookup(LOSSES, value, arg)


def init_name(value, arg="init"):
    return _lookup(INITS, value, arg)


def activation(value, arg="activation"):
    """The core's Activation for a name (None: identity)."""
    return _core.Activation.__members__[activation_name(value, arg)]


def loss(value, arg="loss"):
    """The core's Loss for a name."""
    return _core.Loss.__members__[loss_name(value, arg)]


def init(value, arg="init"):
    """The core's Init for a name."""
    return _core.Init.__members__[init_name(value, arg)]
