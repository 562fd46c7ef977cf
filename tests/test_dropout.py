"""Dropout: the core's keyed Philox mask against fastmlp.reference, bit for bit.

The mask is integer arithmetic plus one select between two constants, so the
core and the reference must agree exactly, on every instruction-set path of
the core (the isa fixture runs the generic lanes and, where the CPU has it,
the AVX-512 lanes) and for any thread count. The reference's Philox is in
turn pinned to the published known-answer vectors of Random123.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _core
from fastmlp import reference as ref
from conftest import TeamProbe

PS = (0.0, 1e-9, 0.1, 0.25, 0.5, 0.9, 0.999)
SEEDS = (0, 1, 2**32 + 7, 2**64 - 1)
STEPS = (0, 1, 2**32 + 3)
LAYERS = (0, 1, 5, 2**24 - 1)
COUNTS = (1, 2, 3, 4, 5, 63, 64, 65, 127, 1001)


def test_philox_known_answers():
    # Random123 kat_vectors, "philox4x32 10": counter (4 words), key (2 words) -> 4 words.
    cases = [
        ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
        ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF),
         (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
        ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
         (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
    ]
    counters = np.array([c for c, _, _ in cases], dtype=np.uint32)
    for i, (_, (k0, k1), want) in enumerate(cases):
        got = ref.philox4x32(counters, k0 | (k1 << 32))[i]
        assert got.dtype == np.uint32
        assert got.tolist() == list(want)


@pytest.mark.usefixtures("isa")
@pytest.mark.parametrize("p", PS)
def test_core_mask_equals_reference_bitwise(dtype, p):
    for seed in SEEDS:
        for step in STEPS:
            for layer in LAYERS:
                for count in COUNTS:
                    got = fm.ops.dropout_mask((count,), p, seed, step, layer, dtype=dtype)
                    want = ref.dropout_mask((count,), p, seed, step, layer, dtype=dtype)
                    assert got.dtype == want.dtype == dtype
                    assert got.tobytes() == want.tobytes(), (seed, step, layer, count)


@pytest.mark.usefixtures("isa")
def test_core_mask_2d_and_large_equals_reference(dtype):
    # (n, units) layout is row-major element order; 70001 elements make the
    # core take its threaded path whenever more than one thread is allowed.
    for shape in [(7, 13), (257, 129), (70001,)]:
        got = fm.ops.dropout_mask(shape, 0.3, 99, 12, 2, dtype=dtype)
        want = ref.dropout_mask(shape, 0.3, 99, 12, 2, dtype=dtype)
        assert got.shape == want.shape == shape
        assert got.tobytes() == want.tobytes()


def test_keep_decision_at_the_threshold_is_u_greater_equal_p(dtype):
    # Choose p equal to element 0's own draw u = w * 2^-32: u >= p keeps it;
    # the next double above p drops it. Checks the integer threshold of the
    # core against the documented floating-point rule at its edge.
    counter = np.array([[0, 5, 3 | (2 << 8), 0]], dtype=np.uint32)
    w = int(ref.philox4x32(counter, 77)[0, 0])
    p = w * 2.0**-32
    assert 0.0 < p < 1.0
    for q, kept in ((p, True), (math.nextafter(p, 1.0), False), (math.nextafter(p, 0.0), True)):
        core = fm.ops.dropout_mask((4,), q, 77, 5, 2, dtype=dtype)
        assert core.tobytes() == ref.dropout_mask((4,), q, 77, 5, 2, dtype=dtype).tobytes()
        assert (core[0] != 0) == kept


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_keep_fraction_within_five_sigma(p):
    n = 1_000_000
    mask = fm.ops.dropout_mask((n,), p, 2024, 3, 1)
    kept = np.count_nonzero(mask)
    # kept ~ Binomial(n, 1 - p): standard deviation sqrt(n p (1 - p)).
    assert abs(kept - n * (1 - p)) <= 5 * math.sqrt(n * p * (1 - p))


@pytest.mark.parametrize("p", [0.1, 1 / 3, 0.5, 0.9])
def test_kept_values_are_exactly_one_over_keep_probability(dtype, p):
    mask = fm.ops.dropout_mask((5000,), p, 8, 0, 0, dtype=dtype)
    values = set(np.unique(mask).tolist())
    assert values == {0.0, float(np.dtype(dtype).type(1.0 / (1.0 - p)))}


def test_p_zero_keeps_everything(dtype):
    for count in (0, 1, 5, 1000):
        mask = fm.ops.dropout_mask((count,), 0.0, 3, 4, 5, dtype=dtype)
        assert mask.dtype == dtype
        assert (mask == 1.0).all()


def test_changing_seed_step_or_layer_changes_the_mask():
    base = fm.ops.dropout_mask((10000,), 0.5, 1, 1, 1)
    others = [
        fm.ops.dropout_mask((10000,), 0.5, 2, 1, 1),
        fm.ops.dropout_mask((10000,), 0.5, 1 + 2**32, 1, 1),  # the key's high word
        fm.ops.dropout_mask((10000,), 0.5, 1, 2, 1),
        fm.ops.dropout_mask((10000,), 0.5, 1, 1 + 2**32, 1),  # the step's high word
        fm.ops.dropout_mask((10000,), 0.5, 1, 1, 2),
    ]
    for other in others:
        # Independent masks agree on about half the elements, never on all.
        assert 0.45 < np.mean((base != 0) == (other != 0)) < 0.55
    assert np.array_equal(base, fm.ops.dropout_mask((10000,), 0.5, 1, 1, 1))


def test_dropout_stream_is_not_the_init_or_shuffle_stream():
    # Counter word 2 carries the stream id (3 for dropout) in its low byte.
    counters = np.zeros((1, 4), dtype=np.uint32)
    counters[0, 2] = 3
    w = ref.philox4x32(counters, 5)[0]
    mask = ref.dropout_mask((4,), 0.5, 5, 0, 0, dtype="float64")
    assert np.array_equal(mask != 0, w.astype(np.float64) * 2.0**-32 >= 0.5)


def test_one_and_two_threads_bitwise_identical(dtype):
    if not _core.have_openmp():
        pytest.skip("built without OpenMP")
    results, teams = [], []
    for threads in (1, 2):
        fm.set_num_threads(threads)
        with TeamProbe() as probe:
            results.append(fm.ops.dropout_mask((300_001,), 0.4, 11, 6, 3, dtype=dtype))
        teams.append(probe.largest)
    assert teams == [0, 2]  # the 2-thread run did split the mask
    assert results[0].tobytes() == results[1].tobytes()
    assert results[0].tobytes() == ref.dropout_mask((300_001,), 0.4, 11, 6, 3, dtype=dtype).tobytes()


def test_apply_mask(rng, dtype):
    x = rng.standard_normal((33, 17)).astype(dtype)
    mask = fm.ops.dropout_mask(x.shape, 0.5, 1, 2, 3, dtype=dtype)
    y = fm.ops.apply_mask(x, mask)
    assert y.dtype == dtype
    assert np.array_equal(y, x * mask)  # one exact product per element


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: fm.ops.dropout_mask(4, 1.0, 0, 0, 0), ValueError, r"^p:"),
        (lambda: fm.ops.dropout_mask(4, -0.1, 0, 0, 0), ValueError, r"^p:"),
        (lambda: fm.ops.dropout_mask(4, float("nan"), 0, 0, 0), ValueError, r"^p:"),
        (lambda: fm.ops.dropout_mask(4, 0.5, -1, 0, 0), ValueError, r"^seed:"),
        (lambda: fm.ops.dropout_mask(4, 0.5, 2**64, 0, 0), ValueError, r"^seed:"),
        (lambda: fm.ops.dropout_mask(4, 0.5, 0, -1, 0), ValueError, r"^step:"),
        (lambda: fm.ops.dropout_mask(4, 0.5, 0, 0, 2**24), ValueError, r"^layer:"),
        (lambda: fm.ops.dropout_mask(4, 0.5, 1.5, 0, 0), TypeError, r"^seed:"),
        (lambda: fm.ops.dropout_mask(4, 0.5, 0, 0, 0, dtype="int32"), ValueError, r"^dtype:"),
        (lambda: fm.ops.dropout_mask((2, -1), 0.5, 0, 0, 0), ValueError, r"^shape:"),
        (lambda: _core.dropout_mask([0.0] * 4, 0.5, 0, 0, 0), TypeError, r"^out:"),
        (lambda: _core.dropout_mask(np.zeros(4, np.int64), 0.5, 0, 0, 0), TypeError, r"^out:"),
        (lambda: _core.dropout_mask(np.zeros((2, 2)), 0.5, 0, 0, 0), ValueError, r"^out:"),
        (lambda: _core.dropout_mask(np.zeros(8)[::2], 0.5, 0, 0, 0), ValueError, r"^out:"),
        (lambda: fm.ops.apply_mask(np.ones(3), np.ones(4)), ValueError, r"^mask:"),
        (lambda: ref.dropout_mask(4, 1.0, 0, 0, 0), ValueError, r"^p:"),
        (lambda: ref.dropout_mask(4, 0.5, 0, 0, 2**24), ValueError, r"^layer:"),
        (lambda: ref.philox4x32(np.zeros((2, 3), np.uint32), 0), ValueError, r"^counters:"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_read_only_out_is_refused():
    out = np.zeros(4)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"^out:"):
        _core.dropout_mask(out, 0.5, 0, 0, 0)
