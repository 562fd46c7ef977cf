#!/usr/bin/env python
"""Two builds of fastmlp side by side: one configuration's train_step, alternately.

    python benchmarks/ab_builds.py BEFORE_DIR AFTER_DIR [--rounds 5] [--core 1]
    python benchmarks/ab_builds.py BEFORE_DIR AFTER_DIR --config L
        [--dtype mixed_bfloat16] [--steps 25] [--threads 1] [--rounds 8]

Each DIR is a folder that holds an importable ``fastmlp`` package (e.g. a
copy of an older install's site-packages/fastmlp, or a source tree's
``python``). The two are measured alternately, each round in a fresh process
pinned to one core, and the script prints the best time of each and their
ratio, for ``model.train_step`` and for the core's ``train_step`` alone, on
the S configuration of compare.py (64-32-10 relu, batch 32, float32, SGD, one
thread): the size where per-step overhead (bindings, checks, GEMM planning)
shows, which compare.py's larger configurations hide in their noise.

With ``--gemm MxNxK[:TT]`` (transposes of a and b, N or T; e.g.
``1024x784x256:TN``) each round's process instead times one product through
``fm.ops.matmul`` (``--dtype float32``) or ``fm.ops.matmul_bf16`` (``--dtype
bfloat16``) into a preallocated output, and the script prints the best call of
each build (the least disturbed, over all rounds) and their ratio: how a
kernel or packing change shows at the size of one product.

With ``--config`` M, H, L or XL (benchmarks/_peers.py, as compare.py builds
them, in ``--dtype`` float32 or mixed_bfloat16) each round's process instead
times ``--steps`` single calls of ``model.train_step`` after three warm-up
steps, on ``--threads`` threads pinned to the first cores, and the script
prints, per build, the best step and the median step, each as the mean over
the rounds, and their ratios. On a shared machine, where the other tenants'
load moves both builds alike from round to round, this is how a change of a
few percent in a step that touches memory can be seen at all.
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


STEP_WORKER = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(1, sys.argv[2])
import fastmlp as fm
from _peers import CONFIGS, make_data, make_model
cfg = CONFIGS[sys.argv[3]]
fm.set_num_threads(int(sys.argv[6]))
X, y = make_data(cfg)
m = make_model(cfg, dtype=sys.argv[4])
for _ in range(3):
    m.train_step(X, y)
times = []
for _ in range(int(sys.argv[5])):
    t = time.perf_counter()
    m.train_step(X, y)
    times.append(time.perf_counter() - t)
print(json.dumps({"best": min(times), "median": statistics.median(times)}))
"""

GEMM_WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import fastmlp as fm
fm.set_num_threads(int(sys.argv[4]))
dims, _, tr = sys.argv[2].partition(":")
m, n, k = (int(x) for x in dims.split("x"))
ta, tb = (tr or "NN")[0] == "T", (tr or "NN")[1] == "T"
rng = np.random.default_rng(0)
a = rng.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
b = rng.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
out = np.empty((m, n), np.float32)
mm = fm.ops.matmul_bf16 if sys.argv[3] == "bfloat16" else fm.ops.matmul
reps = max(20, int(3e8 / (m * n * k)))
best = float("inf")
for _ in range(7):
    t = time.perf_counter()
    for _ in range(reps):
        mm(a, b, trans_a=ta, trans_b=tb, out=out)
    best = min(best, (time.perf_counter() - t) / reps)
print(json.dumps({"best": best}))
"""


def measure(folder, cores, args=None):
    if args is not None and args.gemm:
        cmd = [sys.executable, "-c", GEMM_WORKER, os.path.abspath(folder), args.gemm,
               args.dtype, str(args.threads)]
    elif args is None or args.config == "S":
        cmd = [sys.executable, "-c", WORKER, os.path.abspath(folder)]
    else:
        here = os.path.dirname(os.path.abspath(__file__))
        cmd = [sys.executable, "-c", STEP_WORKER, os.path.abspath(folder), here, args.config,
               args.dtype, str(args.steps), str(args.threads)]
    if sys.platform.startswith("linux"):
        cmd = ["taskset", "-c", cores, *cmd]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("before")
    p.add_argument("after")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--core", type=int, default=0,
                   help="the core to pin each worker to (S; with --threads, the first core)")
    p.add_argument("--config", default="S", choices=["S", "M", "H", "L", "XL"])
    p.add_argument("--dtype", default="float32",
                   choices=["float32", "mixed_bfloat16", "bfloat16"],
                   help="mixed_bfloat16: a --config's policy; bfloat16: a --gemm through "
                        "matmul_bf16")
    p.add_argument("--gemm",
                   help="MxNxK[:TT] instead of a --config: one product, e.g. 1024x784x256:TN")
    p.add_argument("--steps", type=int, default=25, help="timed steps per round (not S)")
    p.add_argument("--threads", type=int, default=1, help="threads (not S)")
    args = p.parse_args()
    if args.gemm:
        if args.dtype == "mixed_bfloat16":
            p.error("--gemm takes --dtype float32 or bfloat16")
    elif args.dtype == "bfloat16":
        p.error("--dtype bfloat16 is for --gemm (a --config takes mixed_bfloat16)")
    elif args.config == "S" and (args.dtype != "float32" or args.threads != 1):
        p.error("the S comparison is float32 on one thread")
    cores = ",".join(str(args.core + i) for i in range(args.threads))
    runs = {"before": [], "after": []}
    for _ in range(args.rounds):
        for side, folder in (("before", args.before), ("after", args.after)):
            runs[side].append(measure(folder, cores, args))
            print(f"  {side}: {json.dumps(runs[side][-1])}", file=sys.stderr)
    if args.gemm:
        b = min(r["best"] for r in runs["before"])
        a = min(r["best"] for r in runs["after"])
        print(f"| {args.gemm} {args.dtype}, {args.threads} thread(s), best of {args.rounds} rounds "
              f"| before | after | before/after |")
        print("|---|---:|---:|---:|")
        print(f"| one product | {b * 1e6:.2f} us | {a * 1e6:.2f} us | {b / a:.3f}x |")
        return
    if args.config != "S":
        print(f"| {args.config} {args.dtype}, {args.threads} thread(s), {args.rounds} rounds of "
              f"{args.steps} steps | before | after | before/after |")
        print("|---|---:|---:|---:|")
        for key in ("best", "median"):
            b = sum(r[key] for r in runs["before"]) / args.rounds
            a = sum(r[key] for r in runs["after"]) / args.rounds
            print(f"| {key} step (mean over rounds) | {b * 1e3:.2f} ms | {a * 1e3:.2f} ms | "
                  f"{b / a:.3f}x |")
        return
    print("| S 64-32-10 b32, 1 thread | before (best) | after (best) | after/before |")
    print("|---|---:|---:|---:|")
    for key, label in (("model", "model.train_step"), ("core", "core train_step")):
        b = min(r[key] for r in runs["before"])
        a = min(r[key] for r in runs["after"])
        print(f"| {label} | {b * 1e6:.2f} us | {a * 1e6:.2f} us | {a / b:.3f} |")


if __name__ == "__main__":
    main()
