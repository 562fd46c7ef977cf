"""The GEMM's instruction-set paths: selection, FASTMLP_ISA, and the shapes
that take each of the driver's routes (operands read in place or packed,
narrow kernel, swapped operands, edge tiles), on every path this CPU runs."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
import pytest
from conftest import ISAS, TeamProbe

import fastmlp as fm


def _run(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full,
                          timeout=120)


def test_supported_paths_and_config():
    assert ISAS[0] == "generic"
    assert set(ISAS) <= {"generic", "avx2", "avx512"}
    cfg = fm.show_config()
    assert cfg["isa"] in ISAS and cfg["isa_supported"] == ISAS


@pytest.mark.parametrize("name", ISAS)
def test_fastmlp_isa_forces_a_path(name):
    r = _run("import fastmlp as fm; print(fm.show_config()['isa'])", FASTMLP_ISA=name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == name


@pytest.mark.parametrize("value", ["avx1024", "AVX2", "sse"])
def test_fastmlp_isa_unknown_is_a_clear_error(value):
    r = _run("import fastmlp", FASTMLP_ISA=value)
    assert r.returncode != 0
    assert "FASTMLP_ISA: expected one of generic, avx2, avx512" in r.stderr


# FASTMLP_HIDE_ISA (a test hook of csrc/gemm/dispatch.cpp) makes the
# dispatcher believe the CPU lacks a path, so that the refusal of a path the
# CPU cannot run is tested on every machine, the ones with AVX-512 included.
X86 = platform.machine().lower() in ("x86_64", "amd64", "x64")
CONFIG = "import fastmlp as fm; c = fm.show_config(); print(c['isa'], *c['isa_supported'])"


@pytest.mark.skipif(not X86, reason="the avx2 and avx512 paths are x86-64 only")
@pytest.mark.parametrize("hidden", ["avx512", "avx2"])
def test_fastmlp_isa_unsupported_is_a_clear_error(hidden):
    r = _run("import fastmlp", FASTMLP_ISA=hidden, FASTMLP_HIDE_ISA=hidden)
    assert r.returncode != 0
    assert f"FASTMLP_ISA: this CPU (or OS) does not support {hidden}" in r.stderr
    # Hiding avx2 hides avx512 too (its kernels also run AVX2 instructions).
    r = _run("import fastmlp", FASTMLP_ISA="avx512", FASTMLP_HIDE_ISA=hidden)
    assert r.returncode != 0 and "does not support avx512" in r.stderr


@pytest.mark.skipif(not X86, reason="the avx2 and avx512 paths are x86-64 only")
@pytest.mark.parametrize(("hidden", "left"), [("avx512", ["generic", "avx2"]),
                                              ("avx2", ["generic"]),
                                              ("avx2,avx512", ["generic"])])
def test_hidden_isa_leaves_the_supported_list(hidden, left):
    r = _run(CONFIG, FASTMLP_HIDE_ISA=hidden)
    assert r.returncode == 0, r.stderr
    isa, *supported = r.stdout.split()
    assert supported == [name for name in ISAS if name in left]
    assert isa == supported[-1]  # the best path left
    r = _run("import fastmlp as fm; fm.ops.set_isa('avx512')", FASTMLP_HIDE_ISA=hidden)
    assert r.returncode != 0
    assert "ValueError: isa: this CPU (or OS) does not support avx512" in r.stderr


def test_hide_isa_unknown_is_a_clear_error():
    r = _run("import fastmlp", FASTMLP_HIDE_ISA="sse")
    assert r.returncode != 0
    assert "FASTMLP_HIDE_ISA: expected a comma-separated list of avx2, avx512, avx512_bf16, got 'sse'" in r.stderr


def test_set_isa_rejects_bad_values():
    with pytest.raises(ValueError, match="^isa:"):
        fm.ops.set_isa("avx1024")
    with pytest.raises(TypeError, match="^isa:"):
        fm.ops.set_isa(2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fma_peak_returns_a_rate_and_checks_arguments(dtype):
    # Only the form of the answer: speed is measured in benchmarks/, never asserted here.
    value = fm.ops.fma_peak(dtype, threads=1, seconds=0.01)
    assert isinstance(value, float) and np.isfinite(value) and value > 0.0
    with pytest.raises(ValueError, match="^threads:"):
        fm.ops.fma_peak(dtype, threads=0)
    with pytest.raises(ValueError, match="^isa:"):
        fm.ops.fma_peak(dtype, isa="avx1024")


# Shapes chosen to route through each branch of the driver: tiny, exact
# tiles, thin results (narrow kernel / swapped operands), k above the cache
# block, operands above the read-in-place size limit, row strides that are a
# multiple of 4 KiB (packed to avoid L1 set conflicts), a short k with such a
# C (tiles written row block by row block), edges everywhere.
ROUTES = [
    (1, 1, 1), (12, 32, 7), (24, 64, 384), (13, 33, 385), (128, 10, 256), (10, 128, 256),
    (3, 200, 50), (200, 3, 50), (128, 256, 10), (96, 300, 700), (700, 40, 300), (37, 16, 1025),
    (50, 100, 1024), (30, 5, 2048), (6, 64, 3), (100, 1, 300), (1, 300, 100), (295, 70, 520),
    (37, 1024, 10),
]


@pytest.mark.parametrize("shape", ROUTES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_route_on_every_path(isa, rng, dtype, shape):
    m, n, k = shape
    for ta in (False, True):
        for tb in (False, True):
            a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            opa = (a.T if ta else a).astype(np.float64)
            opb = (b.T if tb else b).astype(np.float64)
            exact = opa @ opb
            # |c - exact| <= k eps (|A||B|)_ij, elementwise (Higham, sec. 3.5), with
            # c = 2 for the rounding of the reference itself.
            bound = 2.0 * k * np.finfo(dtype).eps * (np.abs(opa) @ np.abs(opb))
            c = fm.ops.matmul(a, b, trans_a=ta, trans_b=tb)
            assert c.dtype == dtype
            err = np.abs(c - exact)
            assert (err <= bound + np.finfo(dtype).tiny).all(), (isa, ta, tb, float(err.max()))


def test_paths_agree_closely(rng):
    # Every path computes the same sums; FMA versus separate multiply-add
    # rounding is the only difference, within the bound above.
    a = rng.standard_normal((70, 90))
    b = rng.standard_normal((90, 50))
    results = {}
    for name in ISAS:
        prev = fm.ops.set_isa(name)
        try:
            results[name] = fm.ops.matmul(a, b)
        finally:
            fm.ops.set_isa(prev)
    ref = a @ b
    for name, c in results.items():
        np.testing.assert_allclose(c, ref, rtol=0, atol=1e-12 * np.abs(ref).max(), err_msg=name)


@pytest.mark.parametrize("act", ["tanh", "sigmoid"])
def test_vector_activation_matches_reference(isa, rng, act):
    # float32 tanh and sigmoid run through branch-free approximations (see
    # nn/activations.h): within 4 ulp of 1 absolutely, and within 8 float32
    # ulps relatively where the value is not tiny.
    z = np.concatenate([rng.standard_normal(5000) * 4, np.linspace(-30, 30, 2001),
                        [0.0, -0.0, 1e-30, -1e-30, 0.3999, 0.4, 0.4001, 88.0, -88.0, 200.0, -200.0]])
    z32 = z.astype(np.float32).reshape(1, -1)
    y = fm.ops.activation_forward(z32, act).astype(np.float64)
    exact = fm.reference.activation_forward(z32.astype(np.float64), act)
    eps = np.finfo(np.float32).eps
    assert np.abs(y - exact).max() <= 4 * eps
    big = np.abs(exact) > 1e-3
    assert (np.abs(y - exact)[big] <= 8 * eps * np.abs(exact)[big]).all()


def test_training_identical_across_threads_on_every_path(isa, rng):
    X = rng.standard_normal((300, 50)).astype(np.float32)
    y = rng.integers(0, 10, 300)

    def run(threads):
        fm.set_num_threads(threads)
        m = fm.MLP([50, 160, 140, 10], activation="tanh", seed=2)
        m.compile(optimizer=fm.optim.SGD(lr=0.05, momentum=0.9))
        with TeamProbe() as probe:
            m.fit(X, y, epochs=2, batch_size=100, verbose=0)
        if fm._core.have_openmp():
            assert probe.largest == (0 if threads == 1 else 2)
        return [lay.W.tobytes() + lay.b.tobytes() for lay in m.layers]

    assert run(1) == run(2)


OPTIMIZERS = [
    fm.optim.SGD(lr=0.1), fm.optim.SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    fm.optim.Adam(lr=1e-3), fm.optim.Adam(lr=1e-3, weight_decay=1e-2, amsgrad=True),
    fm.optim.Adam(lr=1e-3, betas=(0.3, 0.999)), fm.optim.AdamW(lr=1e-3),
    fm.optim.RMSprop(lr=1e-2, momentum=0.5, centered=True), fm.optim.Adagrad(lr=1e-2),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("opt", OPTIMIZERS, ids=lambda o: repr(o))
def test_optimizer_steps_are_the_same_bits_on_every_path(rng, opt, dtype):
    # The loops are compiled once per instruction set without FMA contraction
    # (csrc/optim/optimizer_loops.h): wider vectors, the same roundings.
    n = 1037  # not a multiple of any vector width
    p = rng.standard_normal(n).astype(dtype)
    g = (rng.standard_normal(n) * np.logspace(-30, 3, n)).astype(dtype)
    g[::97] = 0.0
    g[5] = -0.0
    results = {}
    for name in ISAS:
        prev = fm.ops.set_isa(name)
        try:
            q, state = fm.ops.optimizer_step(opt, p, g, step=1)
            q, state = fm.ops.optimizer_step(opt, q, g * 0.5, state, step=2)
            results[name] = (q, state)
        finally:
            fm.ops.set_isa(prev)
    first = results[ISAS[0]]
    assert not np.array_equal(first[0], p)
    for name, (q, state) in results.items():
        np.testing.assert_array_equal(q, first[0], err_msg=name)
        for s, s0 in zip(state, first[1]):
            np.testing.assert_array_equal(s, s0, err_msg=name)
