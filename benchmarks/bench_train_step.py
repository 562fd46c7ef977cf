"""One training step (forward, loss, backward, SGD update, lr 0.01) of fastmlp
against the same step in NumPy (hand-written, preallocated float32), PyTorch
(eager nn.Sequential + torch.optim.SGD) and JAX (a jax.jit-compiled step).

Configurations (float32; see _peers.CONFIGS): S 64-32-10 relu batch 32,
M 784-256-256-10 relu batch 128, H 28-300x5-1 tanh batch 100 (BCE),
L 784-1024x3-10 relu batch 256, XL 1024-4096-4096-1024 relu batch 512 (mse).

Every step starts from the parameters of the same fastmlp model, and its
builder checks once, outside the timed calls, that its losses match
fastmlp's. torch and jax cases are skipped when the library is missing.
GFLOP/s (the GEMMs of the step) is shown in extra_info.

For like-for-like numbers across libraries and thread counts, prefer
benchmarks/compare.py, which runs every measurement in a fresh process.
"""

import pytest
from _peers import CONFIGS, LIBRARIES, build_train_step, train_step_flops


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize("name", list(CONFIGS))
def test_train_step(benchmark, lib, name):
    if lib in ("torch", "jax"):
        pytest.importorskip(lib)
    cfg = CONFIGS[name]
    benchmark.group = f"train-step-{name}"
    step = build_train_step(lib, name)
    benchmark(step)
    flops = train_step_flops(cfg.sizes, cfg.batch)
    if benchmark.stats is not None:  # None under --benchmark-disable (a smoke run)
        benchmark.extra_info["gflops"] = flops / benchmark.stats.stats.mean / 1e9
