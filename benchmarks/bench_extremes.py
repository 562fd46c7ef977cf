#!/usr/bin/env python
"""Cost of exactness at the extremes: activation forward/backward and the
loss + gradient, one build or two side by side.

    python benchmarks/bench_extremes.py AFTER_DIR                      # one build
    python benchmarks/bench_extremes.py BEFORE_DIR AFTER_DIR [--rounds 3]

Each DIR holds an importable ``fastmlp`` package (a source tree's
``python`` folder, or a copy of it beside an older build's _core). The
builds are measured alternately, each round in a fresh process on one
thread, and the best time of each case is kept; with two builds the ratio
after/before is printed (> 1: the new build is slower). Cases, float32 and
float64 each:

* activation_forward / activation_backward on 256 x 1024 (fm.ops: the
  whole-array kernels; float32 tanh and sigmoid forward run the ISA loops
  that the GEMM epilogue also runs);
* dense_backward with 256 x 1024 outputs (the fused dz / db strip loop),
  in = 256, for sigmoid and tanh;
* loss_forward_backward (softmax or sigmoid output, loss and gradient) on
  256 x 10 and 1024 x 1000 logits.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import fastmlp as fm
fm.set_num_threads(1)
rng = np.random.default_rng(0)

def best(f, budget=0.15, repeats=7):
    f()
    t = time.perf_counter(); f(); one = max(time.perf_counter() - t, 1e-7)
    n = max(1, int(budget / repeats / one))
    out = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            f()
        out = min(out, (time.perf_counter() - t) / n)
    return out

res = {}
for dt in (np.float32, np.float64):
    name = np.dtype(dt).name
    z = (3.0 * rng.standard_normal((256, 1024))).astype(dt)
    dy = rng.standard_normal((256, 1024)).astype(dt)
    for act in ("sigmoid", "tanh", "elu", "gelu", "softplus"):
        y = fm.ops.activation_forward(z, act)
        res[f"act_fwd {act} 256x1024 {name}"] = best(lambda: fm.ops.activation_forward(z, act))
        res[f"act_bwd {act} 256x1024 {name}"] = best(
            lambda: fm.ops.activation_backward(dy, z, y, act))
    x = rng.standard_normal((256, 256)).astype(dt)
    w = (0.1 * rng.standard_normal((1024, 256))).astype(dt)
    b = np.zeros(1024, dtype=dt)
    for act in ("sigmoid", "tanh"):
        zz, yy = fm.ops.dense_forward(x, w, b, act)
        res[f"dense_bwd {act} 256x256->1024 {name}"] = best(
            lambda: fm.ops.dense_backward(dy, x, w, zz, yy, act))
    for n, k in ((256, 10), (1024, 1000)):
        logits = (4.0 * rng.standard_normal((n, k))).astype(dt)
        ids = rng.integers(0, k, n).astype(np.int32)
        res[f"cross_entropy {n}x{k} {name}"] = best(
            lambda: fm.ops.loss_forward_backward("cross_entropy", logits, logits, ids))
        t01 = (rng.random((n, k)) < 0.5).astype(dt)
        res[f"binary_cross_entropy {n}x{k} {name}"] = best(
            lambda: fm.ops.loss_forward_backward("binary_cross_entropy", logits, logits, t01))
print(json.dumps(res))
"""


def measure(folder):
    cmd = [sys.executable, "-c", WORKER, os.path.abspath(folder)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", help="AFTER, or BEFORE AFTER")
    p.add_argument("--rounds", type=int, default=3)
    a = p.parse_args()
    if len(a.dirs) > 2:
        p.error("one or two package folders")
    bests = [{} for _ in a.dirs]
    for _ in range(a.rounds):
        for i, d in enumerate(a.dirs):  # alternate, so drifting load hits both
            for key, t in measure(d).items():
                bests[i][key] = min(bests[i].get(key, float("inf")), t)
    keys = list(bests[-1])
    width = max(len(k) for k in keys)
    if len(a.dirs) == 1:
        print(f"{'case':<{width}}  {'best us':>10}")
        for k in keys:
            print(f"{k:<{width}}  {bests[0][k] * 1e6:10.1f}")
        return
    print(f"{'case':<{width}}  {'before us':>10}  {'after us':>10}  {'after/before':>12}")
    for k in keys:
        b, t = bests[0][k], bests[1][k]
        print(f"{k:<{width}}  {b * 1e6:10.1f}  {t * 1e6:10.1f}  {t / b:12.3f}")


if __name__ == "__main__":
    main()
