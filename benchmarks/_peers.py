"""Step builders shared by the pytest-benchmark suites and benchmarks/compare.py.

A *train-step builder* returns a zero-argument callable that performs one full
training step (forward, loss, backward, SGD update, lr 0.01, no momentum) of
one configuration on fixed data.  Every library starts from the parameters of
the same fastmlp model (seed 0), and every builder checks once, before it
hands the step out, that it computes what fastmlp computes on the same data:
the losses of its first two steps (forward pass and loss) and the change of
every parameter in the first step (gradients and SGD update).  fastmlp's own
builder checks fastmlp the same way against a float64 NumPy step.

A *GEMM builder* returns a zero-argument callable computing op(a) @ op(b) into
a preallocated output, after checking the result once against float64 NumPy.

Libraries: "fastmlp", "numpy" (hand-written, preallocated float32 step /
np.matmul), "torch" (eager nn.Sequential + torch.optim.SGD / torch.mm) and
"jax" (a jax.jit-compiled step; no GEMM builder).  torch and jax are imported
only when their builder is called.

The bfloat16 variants ("fastmlp-bf16": dtype="mixed_bfloat16"; "torch-bf16":
the same eager step under torch.autocast("cpu", dtype=torch.bfloat16);
"jax-bf16": the jitted step with bf16 matmul operands and float32
accumulation) keep float32 parameters and feed their products bf16 operands;
they are checked against fastmlp's float32 step at bf16's tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import fastmlp as fm

LR = 0.01
# Relative tolerance of the loss check: float32 sums in a different order.
LOSS_RTOL = 1e-4
# Relative tolerance of the first update of each parameter (gradient * lr).
UPDATE_RTOL = 1e-3
# The same checks for the bfloat16 variants: each product's operands keep 8
# significant bits, so the loss agrees with float32 to about 2^-8; the first
# layer's update passes through every layer's bf16 products on the way back
# and differs by about 5% in norm on M (fastmlp and torch autocast alike).
BF16_LOSS_RTOL = 1e-2
BF16_UPDATE_RTOL = 0.15
LIBRARIES = ("fastmlp", "numpy", "torch", "jax")
BF16_LIBRARIES = ("fastmlp-bf16", "torch-bf16", "jax-bf16")
GEMM_LIBRARIES = ("fastmlp", "numpy", "torch")


# --------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    sizes: tuple  # layer sizes, input first
    activation: str  # of the hidden layers; the output layer is linear
    loss: str
    batch: int


CONFIGS = {
    "S": Config((64, 32, 10), "relu", "cross_entropy", 32),
    "M": Config((784, 256, 256, 10), "relu", "cross_entropy", 128),
    "H": Config((28, 300, 300, 300, 300, 300, 1), "tanh", "binary_cross_entropy", 100),
    "L": Config((784, 1024, 1024, 1024, 10), "relu", "cross_entropy", 256),
    "XL": Config((1024, 4096, 4096, 1024), "relu", "mse", 512),
}


def make_data(cfg: Config, seed=0):
    """(X, y): X float32 (batch, inputs); y int32 class ids (cross_entropy),
    0/1 float32 (binary_cross_entropy) or standard-normal float32 (mse)."""
    rng = np.random.default_rng(seed)
    n, k = cfg.batch, cfg.sizes[-1]
    X = rng.standard_normal((n, cfg.sizes[0])).astype(np.float32)
    if cfg.loss == "cross_entropy":
        y = rng.integers(0, k, n).astype(np.int32)
    elif cfg.loss == "binary_cross_entropy":
        y = (rng.random((n, k)) > 0.5).astype(np.float32)
    else:
        y = rng.standard_normal((n, k)).astype(np.float32)
    return X, y


def make_model(cfg: Config, seed=0, dtype="float32"):
    """The fastmlp model every library starts from (float32, SGD lr 0.01);
    dtype="mixed_bfloat16" gives the same parameters with bf16 products."""
    model = fm.MLP(list(cfg.sizes), activation=cfg.activation, loss=cfg.loss,
                   dtype=dtype, seed=seed)
    model.compile(optimizer=fm.optim.SGD(lr=LR))
    return model


def initial_params(model):
    """Copies of the model's (W, b) per layer; W is (out, in)."""
    return [(layer.W.copy(), layer.b.copy()) for layer in model.layers]


def train_step_flops(sizes, batch):
    """Floating-point operations of the GEMMs of one step: 2 m n k for each of
    forward (X W^T), weight gradient (dZ^T X) and input gradient (dZ W); the
    first layer has no input gradient."""
    total = 0.0
    for i in range(len(sizes) - 1):
        mnk = 2.0 * batch * sizes[i] * sizes[i + 1]
        total += mnk * (3 if i > 0 else 2)
    return total


def reference_run(cfg: Config, X, y):
    """fastmlp's run from the seed-0 start: (initial params, [loss of step 1,
    loss of step 2], params after step 1)."""
    model = make_model(cfg)
    p0 = initial_params(model)
    first = model.train_step(X, y)
    p1 = initial_params(model)
    return p0, [first, model.train_step(X, y)], p1


def check_losses(lib, got, want, rtol=LOSS_RTOL):
    for i, (g, w) in enumerate(zip(got, want)):
        if not abs(g - w) <= rtol * max(abs(w), 1e-3):
            raise AssertionError(
                f"{lib}: loss of step {i + 1} is {g!r}, fastmlp's is {w!r} "
                f"(relative difference {abs(g - w) / max(abs(w), 1e-30):.2e} > {rtol})"
            )


def check_update(lib, p0, got, want, rtol=UPDATE_RTOL):
    """The first step's change of every parameter, got - p0 against want - p0,
    in the 2-norm: rtol of the change, plus the float32 rounding of the
    parameters themselves (the change can be 1e-5 of them)."""
    eps = float(np.finfo(np.float32).eps)
    for i, (start, g, w) in enumerate(zip(p0, got, want)):
        for name, s0, gv, wv in (("W", start[0], g[0], w[0]), ("b", start[1], g[1], w[1])):
            s0, gv, wv = (np.asarray(v, dtype=np.float64) for v in (s0, gv, wv))
            err = np.linalg.norm((gv - s0) - (wv - s0))
            size = np.linalg.norm(wv - s0)
            if not err <= rtol * size + 4 * eps * np.linalg.norm(wv) + 1e-30:
                raise AssertionError(
                    f"{lib}: the first step changes layers[{i}].{name} by a different amount "
                    f"than fastmlp (|difference| / |fastmlp's change| = "
                    f"{err / max(size, 1e-300):.2e} > {rtol})"
                )


def _scalar(loss):
    """A Python float from a float, a NumPy / JAX scalar or a torch tensor."""
    if hasattr(loss, "detach"):
        loss = loss.detach()
    return float(loss)


def verify_step(lib, step, params_of, want_losses, p0, want_p1, bf16=False):
    """Run `step` twice from p0: its losses must match want_losses, and its
    parameters after the first step (params_of()) must match want_p1 (at
    bf16's tolerance for the bfloat16 variants)."""
    got = [_scalar(step())]
    p1 = params_of()
    got.append(_scalar(step()))
    check_losses(lib, got, want_losses, BF16_LOSS_RTOL if bf16 else LOSS_RTOL)
    check_update(lib, p0, p1, want_p1, BF16_UPDATE_RTOL if bf16 else UPDATE_RTOL)


# --------------------------------------------------------------------------
# NumPy training step
# --------------------------------------------------------------------------
class NumpyStep:
    """A careful NumPy training step (float32 by default): every intermediate
    lives in a buffer allocated once, and matmuls write into it with out=.

    Layout as fastmlp: W (out, in), z = x W^T + b, hidden y = act(z), output
    linear.  Returns the mean loss of the batch before the update.
    """

    def __init__(self, params, activation, loss, n, dtype=np.float32, lr=LR):
        if activation not in ("relu", "tanh"):
            raise ValueError(f"NumpyStep: activation {activation!r} not supported")
        if loss not in ("cross_entropy", "binary_cross_entropy", "mse"):
            raise ValueError(f"NumpyStep: loss {loss!r} not supported")
        self.W = [np.array(W, dtype=dtype) for W, _ in params]
        self.b = [np.array(b, dtype=dtype) for _, b in params]
        self.act, self.loss, self.lr, self.dtype = activation, loss, lr, dtype
        outs = [W.shape[0] for W in self.W]
        self.z = [np.empty((n, k), dtype) for k in outs]  # pre-activations
        self.y = [np.empty((n, k), dtype) for k in outs[:-1]]  # hidden outputs
        self.dW = [np.empty_like(W) for W in self.W]
        self.db = [np.empty_like(b) for b in self.b]
        # dz[i]: gradient with respect to z[i]; also holds dL/dy[i] on its way.
        self.dz = [np.empty((n, k), dtype) for k in outs]
        self.tmp = [np.empty((n, k), dtype) for k in outs[:-1]]  # act' scratch
        self.mask = [np.empty((n, k), bool) for k in outs[:-1]]  # relu' scratch
        self.rows = np.arange(n)

    def params(self):
        """Copies of (W, b) per layer."""
        return [(W.copy(), b.copy()) for W, b in zip(self.W, self.b)]

    def _loss_grad(self, y):
        """Mean loss of the output pre-activation z and its gradient into dz[-1]."""
        z, d = self.z[-1], self.dz[-1]
        n = z.shape[0]
        if self.loss == "cross_entropy":
            # Softmax from the shifted logits; loss = mean(log-sum-exp - z[y]).
            m = z.max(axis=1, keepdims=True)
            np.subtract(z, m, out=d)
            np.exp(d, out=d)
            s = d.sum(axis=1, keepdims=True)
            loss = float(np.mean(np.log(s[:, 0]) + m[:, 0] - z[self.rows, y], dtype=np.float64))
            d /= s
            d[self.rows, y] -= 1
            d *= self.dtype(1.0 / n)
        elif self.loss == "binary_cross_entropy":
            # BCE with logits: max(z, 0) - z t + log1p(exp(-|z|)); d = (sigmoid(z) - t) / size.
            loss = float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))),
                                 dtype=np.float64))
            np.multiply(z, self.dtype(0.5), out=d)  # sigmoid(z) = (1 + tanh(z / 2)) / 2
            np.tanh(d, out=d)
            d += 1
            d *= self.dtype(0.5)
            d -= y
            d *= self.dtype(1.0 / z.size)
        else:
            np.subtract(z, y, out=d)
            loss = float(np.mean(np.square(d), dtype=np.float64))
            d *= self.dtype(2.0 / z.size)
        return loss

    def __call__(self, X, y):
        L = len(self.W)
        # Forward.
        a = X
        for i in range(L):
            np.matmul(a, self.W[i].T, out=self.z[i])
            self.z[i] += self.b[i]
            if i < L - 1:
                if self.act == "relu":
                    np.maximum(self.z[i], 0, out=self.y[i])
                else:
                    np.tanh(self.z[i], out=self.y[i])
                a = self.y[i]
        loss = self._loss_grad(y)
        # Backward, updating each layer once its input gradient is taken.
        for i in range(L - 1, -1, -1):
            a = X if i == 0 else self.y[i - 1]
            dz = self.dz[i]
            np.matmul(dz.T, a, out=self.dW[i])
            np.sum(dz, axis=0, out=self.db[i])
            if i > 0:
                dy = self.dz[i - 1]
                np.matmul(dz, self.W[i], out=dy)
                if self.act == "relu":
                    np.greater(self.z[i - 1], 0, out=self.mask[i - 1])
                    dy *= self.mask[i - 1]
                else:  # tanh' = 1 - y^2
                    t = self.tmp[i - 1]
                    np.multiply(self.y[i - 1], self.y[i - 1], out=t)
                    np.subtract(1, t, out=t)
                    dy *= t
            self.dW[i] *= self.dtype(self.lr)
            self.W[i] -= self.dW[i]
            self.db[i] *= self.dtype(self.lr)
            self.b[i] -= self.db[i]
        return loss


# --------------------------------------------------------------------------
# Train-step builders
# --------------------------------------------------------------------------
def _fastmlp_step(cfg, X, y, check):
    model = make_model(cfg)
    if check:
        # fastmlp is the reference of the other builders: check it in turn
        # against the same step in float64 NumPy.
        ref = NumpyStep(initial_params(model), cfg.activation, cfg.loss, cfg.batch,
                        dtype=np.float64)
        X64, y64 = X.astype(np.float64), (y if y.dtype.kind == "i" else y.astype(np.float64))
        p0 = initial_params(model)
        losses = [ref(X64, y64)]
        p1 = ref.params()
        losses.append(ref(X64, y64))
        verify_step("fastmlp (against float64 NumPy)", lambda: model.train_step(X, y),
                    lambda: initial_params(model), losses, p0, p1)
    return lambda: model.train_step(X, y)


def _numpy_step(cfg, X, y, check):
    step = NumpyStep(initial_params(make_model(cfg)), cfg.activation, cfg.loss, cfg.batch)
    if check:
        p0, losses, p1 = reference_run(cfg, X, y)
        verify_step("numpy", lambda: step(X, y), step.params, losses, p0, p1)
    return lambda: step(X, y)


def _fastmlp_bf16_step(cfg, X, y, check):
    try:
        model = make_model(cfg, dtype="mixed_bfloat16")
    except ValueError as exc:  # no AVX512_BF16 here: reported as skipped, not as a failure
        raise ImportError(str(exc)) from None
    if check:
        p0, losses, p1 = reference_run(cfg, X, y)
        verify_step("fastmlp-bf16", lambda: model.train_step(X, y),
                    lambda: initial_params(model), losses, p0, p1, bf16=True)
    return lambda: model.train_step(X, y)


def _torch_step(cfg, X, y, check, autocast=False):
    import contextlib

    import torch
    from torch import nn

    params = initial_params(make_model(cfg))
    act = {"relu": nn.ReLU, "tanh": nn.Tanh}[cfg.activation]
    layers = []
    for i, (W, b) in enumerate(params):
        lin = nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(params) - 1:
            layers.append(act())
    net = nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=LR)
    lossfn = {"cross_entropy": nn.CrossEntropyLoss, "binary_cross_entropy": nn.BCEWithLogitsLoss,
              "mse": nn.MSELoss}[cfg.loss]()
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y.astype(np.int64) if cfg.loss == "cross_entropy" else y)

    def region():
        return (torch.autocast("cpu", dtype=torch.bfloat16) if autocast
                else contextlib.nullcontext())

    def step():
        opt.zero_grad(set_to_none=True)
        with region():
            loss = lossfn(net(Xt), yt)
        loss.backward()
        opt.step()
        return loss

    def params_of():
        lins = [m for m in net if isinstance(m, nn.Linear)]
        return [(m.weight.detach().numpy().copy(), m.bias.detach().numpy().copy()) for m in lins]

    if check:
        p0, losses, p1 = reference_run(cfg, X, y)
        verify_step("torch-bf16" if autocast else "torch", step, params_of, losses, p0, p1,
                    bf16=autocast)
    return step


def _jax_step(cfg, X, y, check, bf16=False):
    import jax
    import jax.numpy as jnp

    act = {"relu": jax.nn.relu, "tanh": jnp.tanh}[cfg.activation]

    def mm(a, W):
        if not bf16:
            return a @ W.T
        return jnp.matmul(a.astype(jnp.bfloat16), W.T.astype(jnp.bfloat16),
                          preferred_element_type=jnp.float32)

    def loss_of(params, X, y):
        a = X
        for W, b in params[:-1]:
            a = act(mm(a, W) + b)
        W, b = params[-1]
        z = mm(a, W) + b
        if cfg.loss == "cross_entropy":
            logp = jax.nn.log_softmax(z, axis=1)
            return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))
        if cfg.loss == "binary_cross_entropy":
            return jnp.mean(jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z))))
        return jnp.mean((z - y) ** 2)

    def sgd(params, X, y):
        loss, grads = jax.value_and_grad(loss_of)(params, X, y)
        new = jax.tree_util.tree_map(lambda p, g: p - LR * g, params, grads)
        return new, loss

    jstep = jax.jit(sgd, donate_argnums=(0,))
    state = {"params": [(jnp.asarray(W), jnp.asarray(b)) for W, b in initial_params(make_model(cfg))]}
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def step():
        params, loss = jstep(state["params"], Xj, yj)
        jax.block_until_ready((params, loss))
        state["params"] = params
        return loss

    def params_of():
        return [(np.array(W), np.array(b)) for W, b in state["params"]]

    if check:
        p0, losses, p1 = reference_run(cfg, X, y)
        verify_step("jax-bf16" if bf16 else "jax", step, params_of, losses, p0, p1, bf16=bf16)
    return step


_TRAIN_BUILDERS = {
    "fastmlp": _fastmlp_step, "numpy": _numpy_step, "torch": _torch_step, "jax": _jax_step,
    "fastmlp-bf16": _fastmlp_bf16_step,
    "torch-bf16": lambda cfg, X, y, check: _torch_step(cfg, X, y, check, autocast=True),
    "jax-bf16": lambda cfg, X, y, check: _jax_step(cfg, X, y, check, bf16=True),
}


def build_train_step(lib, config, X=None, y=None, check=True):
    """One training step of `config` (a name of CONFIGS or a Config) in `lib`,
    as a zero-argument callable; data from make_data unless given."""
    cfg = CONFIGS[config] if isinstance(config, str) else config
    if X is None:
        X, y = make_data(cfg)
    return _TRAIN_BUILDERS[lib](cfg, X, y, check)


# --------------------------------------------------------------------------
# GEMM builders
# --------------------------------------------------------------------------
# (m, n, k, trans_a, trans_b, label) of the three products of each layer of the
# M configuration (784-256-256-10, batch 128): forward X W^T (N,T), weight
# gradient dZ^T X (T,N), input gradient dZ W (N,N), the last including the
# thin output layer; the first layer has no input gradient.
def mlp_gemm_shapes(sizes=CONFIGS["M"].sizes, batch=CONFIGS["M"].batch):
    shapes = []
    for i in range(len(sizes) - 1):
        fan_in, fan_out = sizes[i], sizes[i + 1]
        shapes.append((batch, fan_out, fan_in, False, True, f"L{i}-fwd"))
        shapes.append((fan_out, fan_in, batch, True, False, f"L{i}-dW"))
        if i > 0:
            shapes.append((batch, fan_in, fan_out, False, False, f"L{i}-dX"))
    return shapes


def gemm_operands(m, n, k, trans_a, trans_b, dtype, seed=0):
    """a (k, m) if trans_a else (m, k); b (n, k) if trans_b else (k, n)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def _check_gemm(lib, res, a, b, trans_a, trans_b):
    opa = (a.T if trans_a else a).astype(np.float64)
    opb = (b.T if trans_b else b).astype(np.float64)
    want = opa @ opb
    k = opa.shape[1]
    tol = 1e-5 if a.dtype == np.float32 else 1e-13
    # Error bound of a length-k dot product, relative to sum |a_i b_i|.
    bound = tol * np.sqrt(k) * (np.abs(opa) @ np.abs(opb)) + 1e-30
    bad = np.abs(np.asarray(res, dtype=np.float64) - want) > bound
    if bad.any():
        raise AssertionError(f"{lib} GEMM: {int(bad.sum())} of {bad.size} entries out of tolerance")


def build_gemm(lib, a, b, trans_a=False, trans_b=False, check=True):
    """op(a) @ op(b) into a preallocated output, as a zero-argument callable."""
    opa = a.T if trans_a else a
    opb = b.T if trans_b else b
    out = np.empty((opa.shape[0], opb.shape[1]), dtype=a.dtype)
    if lib == "fastmlp":
        def fn():
            return fm.ops.matmul(a, b, trans_a=trans_a, trans_b=trans_b, out=out)
    elif lib == "numpy":
        def fn():
            return np.matmul(opa, opb, out=out)
    elif lib == "torch":
        import torch

        ta, tb, tout = torch.from_numpy(opa), torch.from_numpy(opb), torch.from_numpy(out)

        def fn():
            return torch.mm(ta, tb, out=tout)
    else:
        raise ValueError(f"build_gemm: unknown library {lib!r}")
    if check:
        out.fill(np.nan)
        fn()
        _check_gemm(lib, out, a, b, trans_a, trans_b)
    return fn
