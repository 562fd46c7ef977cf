"""Names <-> ids shared with the C++ core (csrc/common/types.h)."""

ACTIVATIONS = ("identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus")
LOSSES = ("mse", "cross_entropy", "binary_cross_entropy")
INITS = ("he_uniform", "he_normal", "glorot_uniform", "glorot_normal", "lecun_normal", "zeros")

ACT_ID = {name: i for i, name in enumerate(ACTIVATIONS)}
LOSS_ID = {name: i for i, name in enumerate(LOSSES)}
INIT_ID = {name: i for i, name in enumerate(INITS)}

# "auto" initialisation: He for the ReLU family, Glorot for the rest.
RELU_LIKE = frozenset({"relu", "leaky_relu", "elu", "gelu"})


def _lookup(table, value, arg):
    if not isinstance(value, str):
        raise TypeError(f"{arg}: expected a string, one of {sorted(table)}; got {value!r}")
    key = value.lower()
    if key not in table:
        raise ValueError(f"{arg}: expected one of {list(table)}, got {value!r}")
    return key


def activation_name(value, arg="activation"):
    return _lookup(ACT_ID, "identity" if value is None else value, arg)


def loss_name(value, arg="loss"):
    return _lookup(LOSS_ID, value, arg)


def act_id(value, arg="act"):
    return ACT_ID[activation_name(value, arg)]


def loss_id(value, arg="loss"):
    return LOSS_ID[loss_name(value, arg)]
