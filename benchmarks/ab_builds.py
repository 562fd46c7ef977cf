#!/usr/bin/env python
"""Two builds of fastmlp side by side: per-step overhead of a small network.

    python benchmarks/ab_builds.py BEFORE_DIR AFTER_DIR [--rounds 5] [--core 1]

Each DIR is a folder that holds an importable ``fastmlp`` package (e.g. a
copy of an older install's site-packages/fastmlp, or a source tree's
``python``). The two are measured alternately, each round in a fresh process
pinned to one core, and the script prints the best time of each and their
ratio, for ``model.train_step`` and for the core's ``train_step`` alone, on
the S configuration of compare.py (64-32-10 relu, batch 32, float32, SGD, one
thread): the size where per-step overhead (bindings, checks, GEMM planning)
shows, which compare.py's larger configurations hide in their noise.
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
m = fm.MLP([64, 32, 10], dtype="float32").compile(fm.optim.SGD(lr=0.01))
X = rng.standard_normal((32, 64)).astype(np.float32)
y = rng.integers(0, 10, 32).astype(np.int64)
y32 = y.astype(np.int32)
net = m._net
def best(f, n=5000, repeats=15):
    for _ in range(n):
        f()
    out = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            f()
        out = min(out, (time.perf_counter() - t) / n)
    return out
print(json.dumps({"model": best(lambda: m.train_step(X, y)),
                  "core": best(lambda: net.train_step(X, y32, None, None))}))
"""


def measure(folder, core):
    cmd = [sys.executable, "-c", WORKER, os.path.abspath(folder)]
    if sys.platform.startswith("linux"):
        cmd = ["taskset", "-c", str(core), *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--core", type=int, default=0, help="the core to pin each worker to")
    args = p.parse_args()
    runs = {"before": [], "after": []}
    for _ in range(args.rounds):
        runs["before"].append(measure(args.before, args.core))
        runs["after"].append(measure(args.after, args.core))
    print("| S 64-32-10 b32, 1 thread | before (best) | after (best) | after/before |")
    print("|---|---:|---:|---:|")
    for key, label in (("model", "model.train_step"), ("core", "core train_step")):
        b = min(r[key] for r in runs["before"])
        a = min(r[key] for r in runs["after"])
        print(f"| {label} | {b * 1e6:.2f} us | {a * 1e6:.2f} us | {a / b:.3f} |")


if __name__ == "__main__":
    main()
