#!/usr/bin/env python
"""Every float32 input through fastmlp's float32 tanh / sigmoid and their
derivatives, against the same functions in double: the worst error in ulps.

    python benchmarks/exhaustive_activations.py [--acts tanh sigmoid]
        [--isa avx512] [--chunk-bits 24]

Runs the whole-array kernels (fm.ops.activation_forward / activation_backward,
the per-ISA vector loops the GEMM epilogue and the dz pass use) over all
2^32 bit patterns, NaNs included (they must stay NaN), in chunks. The error
measure and the double reference (fm.reference on float64) are
tests/test_extremes.py's, imported from it (so this needs the test extras):
|got - exact| in ulps of float32 at the exact value, and below 1e-20 the
absolute error must stay under 1e-20. The
tests sample ~2 million of these inputs per function; this is the full sweep
(4-5 minutes per function and derivative on a Zen 4 core), for a change to
those loops. On the Zen 4 VM (avx512): tanh 1.491 ulp at z = 0.00389,
tanh' 3.433 at z = 3.117, sigmoid 2.217 at z = -5.543, sigmoid' 3.433 at
z = 6.235; no NaN input lost its NaN.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import fastmlp as fm

# The double reference and the ulp measure are the tests' own.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from test_extremes import _double_act as exact  # noqa: E402
from test_extremes import _ulps_f32 as ulps  # noqa: E402


def sweep(act, deriv, chunk_bits):
    step = 1 << chunk_bits
    worst, at, nan_lost = 0.0, None, 0
    for start in range(0, 1 << 32, step):
        z = np.arange(start, start + step, dtype=np.uint64).astype(np.uint32).view(np.float32)
        z = z.reshape(1, -1)
        if deriv:
            got = fm.ops.activation_backward(np.ones_like(z), z, np.zeros_like(z), act)
        else:
            got = fm.ops.activation_forward(z, act)
        z, got = z.ravel(), got.ravel()
        nan = np.isnan(z)
        nan_lost += int(np.count_nonzero(nan & ~np.isnan(got)))
        zf, gf = z[~nan], got[~nan]
        err = ulps(gf, exact(act, zf, deriv))
        i = int(np.argmax(err))
        if err[i] > worst:
            worst, at = float(err[i]), float(zf[i])
    return worst, at, nan_lost


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--acts", nargs="+", default=["tanh", "sigmoid"], choices=["tanh", "sigmoid"])
    p.add_argument("--isa", help="an fm.ops.set_isa path (default: the one in use)")
    p.add_argument("--chunk-bits", type=int, default=24)
    args = p.parse_args()
    if args.isa:
        fm.ops.set_isa(args.isa)
    fm.set_num_threads(1)
    print(f"isa {fm.show_config()['isa']}")
    for act in args.acts:
        for deriv in (False, True):
            t = time.perf_counter()
            worst, at, lost = sweep(act, deriv, args.chunk_bits)
            name = act + ("'" if deriv else "")
            print(f"{name:<9} worst {worst:.3f} ulp at z = {at!r}; NaN inputs not NaN: {lost}; "
                  f"{time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
