#!/usr/bin/env python
"""Two builds side by side: the core's loss_forward_backward (loss_output,
loss and gradient) for every loss and target kind, one thread.

    python benchmarks/ab_losses.py BEFORE AFTER [rounds]     # CASES=substring filters

BEFORE and AFTER are a built ``_core*.so`` each, or a folder holding an
importable ``fastmlp`` package. Two pybind11 builds of one module cannot share
a process (their types collide), so the builds are measured alternately,
A B A B ..., each round in a fresh process; per case the best and the median
of the rounds' best times are printed with their ratios (> 1: AFTER is
slower). Cases, float32 and float64, 256x10 and 1024x1000 logits (4 N(0,1)):
cross-entropy with class ids, one-hot and random soft targets, binary
cross-entropy with 0/1 targets, poisson with counts round(|z|).
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def _so(path):
    if os.path.isdir(path):
        found = glob.glob(os.path.join(path, "fastmlp", "_core*.so")) or glob.glob(
            os.path.join(path, "_core*.so"))
        if not found:
            raise SystemExit(f"{path}: no _core*.so in it or in its fastmlp folder")
        return os.path.realpath(found[0])
    return os.path.realpath(path)


def worker(path):
    """Best time per case of one build, printed as JSON."""
    spec = importlib.util.spec_from_file_location("_core", path)
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
    m.set_num_threads(1)
    rng = np.random.default_rng(0)
    out = {}
    for dt in (np.float32, np.float64):
        for n, k in ((256, 10), (1024, 1000)):
            z = (4.0 * rng.standard_normal((n, k))).astype(dt)
            ids = rng.integers(0, k, n).astype(np.int32)
            t01 = (rng.random((n, k)) < 0.5).astype(dt)
            onehot = np.eye(k, dtype=dt)[ids]
            soft = rng.random((n, k)).astype(dt); soft /= soft.sum(1, keepdims=True)
            counts = np.round(np.abs(z)).astype(dt)
            name = np.dtype(dt).name
            cases = (("cross_entropy", "ids", ids), ("cross_entropy", "onehot", onehot),
                     ("cross_entropy", "soft", soft), ("binary_cross_entropy", "01", t01),
                     ("poisson", "counts", counts))
            for lname, kind, t in cases:
                key = f"{lname} {kind} {n}x{k} {name}"
                if os.environ.get("CASES") and os.environ["CASES"] not in key:
                    continue
                lid = getattr(m.Loss, lname)
                f = lambda: m.loss_forward_backward(lid, z, z, t, None, None)
                f()
                t0 = time.perf_counter(); f(); one = max(time.perf_counter() - t0, 1e-6)
                reps = max(1, int(0.02 / one))
                best = float("inf")
                for _ in range(5):
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        f()
                    best = min(best, (time.perf_counter() - t0) / reps)
                out[key] = best
    print(json.dumps(out))

def main():
    a, b = _so(sys.argv[1]), _so(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = {a: {}, b: {}} if a != b else None
    if res is None:
        raise SystemExit("BEFORE and AFTER are the same build")
    for _ in range(rounds):
        for p in (a, b):
            o = subprocess.run([sys.executable, __file__, "--worker", p], capture_output=True,
                               text=True, env=env, check=True).stdout
            for key, v in json.loads(o.strip().splitlines()[-1]).items():
                res[p].setdefault(key, []).append(v)
    cols = ("A best", "B best", "B/A", "A med", "B med", "B/A")
    print(f"{'case (us)':<42} " + " ".join(f"{c:>{6 if c == 'B/A' else 9}}" for c in cols))
    for key in res[a]:
        ta, tb = res[a][key], res[b][key]
        ba, bb, ma, mb = min(ta), min(tb), statistics.median(ta), statistics.median(tb)
        print(f"{key:<42} {ba * 1e6:9.1f} {bb * 1e6:9.1f} {bb / ba:6.3f} "
              f"{ma * 1e6:9.1f} {mb * 1e6:9.1f} {mb / ma:6.3f}")

if __name__ == "__main__":
    if sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        main()
