#!/usr/bin/env python
"""train_step time: fastmlp float32 and mixed_bfloat16 against torch float32
and torch.autocast("cpu", dtype=torch.bfloat16), in one process.

    python benchmarks/bench_mixed_bf16.py [--configs L XL] [--threads 1 2] [--repeats 7]

Configurations L and XL are compare.py's (benchmarks/_peers.py CONFIGS:
L 784-1024-1024-1024-10 relu cross_entropy batch 256, XL
1024-4096-4096-1024 relu mse batch 512), each library starting from the
same float32 parameters and stepping SGD(lr=0.01), as compare.py does.
Every step is timed on its own after two warm-up steps, the four variants
taking turns step by step (a noisy neighbour then slows all of them alike);
the table reports the best of --repeats (the least disturbed run on a shared
machine) and the median. The steps are benchmarks/_peers.py's, which check each variant's
first two losses and first update against fastmlp float32 (at bf16's
tolerance for the bf16 variants) before timing.

Ratios: "mixed vs f32" = fastmlp float32 time / fastmlp mixed time;
"mixed vs autocast" = torch autocast time / fastmlp mixed time (> 1: fastmlp
faster). The issue's targets: >= 1.5 (L) and 1.6 (XL) over fastmlp float32,
>= 1.15 over torch autocast. Needs AVX512_BF16 for mixed_bfloat16 (or
FASTMLP_ISA=generic_bf16, which measures the portable kernel).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

# NumPy's BLAS only checks the variants' first steps here; one thread, so
# that no OpenBLAS thread spins on the cores the timed steps use after a
# check (compare.py's worker_env does the same). Set before numpy loads.
os.environ["OPENBLAS_NUM_THREADS"] = "1"

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fastmlp as fm  # noqa: E402
from _peers import CONFIGS, build_train_step, make_data  # noqa: E402


# The step builders are compare.py's (benchmarks/_peers.py), which check each
# variant's first losses and update against fastmlp float32 before timing.
VARIANTS = {
    "fastmlp f32": "fastmlp",
    "fastmlp mixed_bf16": "fastmlp-bf16",
    "torch f32": "torch",
    "torch autocast bf16": "torch-bf16",
}


def set_threads(n):
    import torch

    fm.set_num_threads(n)
    torch.set_num_threads(n)


def time_steps(steps, repeats):
    """Best and median time of each step, the steps taken in turn (one step
    of each per round), so that a noisy neighbour slows all of them alike."""
    for step in steps.values():
        for _ in range(2):
            step()
    times = {label: [] for label in steps}
    for _ in range(repeats):
        for label, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[label].append(time.perf_counter() - t0)
    return ({k: min(v) for k, v in times.items()},
            {k: statistics.median(v) for k, v in times.items()})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["L", "XL"], choices=list(CONFIGS))
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    import torch

    c = fm.show_config()
    print(f"fastmlp {c['version']} isa {c['isa']} bf16 {c['bf16_isa']} "
          f"(instructions: {c['bf16_instructions']}); torch {torch.__version__}; "
          f"best of {args.repeats} steps (median in brackets)\n")
    print("| config | threads | fastmlp f32 | fastmlp mixed_bf16 | torch f32 | torch autocast bf16 "
          "| mixed vs f32 | mixed vs autocast | mixed vs torch f32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.configs:
        cfg = CONFIGS[name]
        X, y = make_data(cfg)
        for threads in args.threads:
            set_threads(threads)
            steps = {label: build_train_step(lib, cfg, X, y) for label, lib in VARIANTS.items()}
            best, med = time_steps(steps, args.repeats)
            del steps
            cells = [f"{best[k] * 1e3:.1f} ms ({med[k] * 1e3:.1f})" for k in VARIANTS]
            mixed = best["fastmlp mixed_bf16"]
            ratios = [best["fastmlp f32"] / mixed, best["torch autocast bf16"] / mixed,
                      best["torch f32"] / mixed]
            print(f"| {name} | {threads} | " + " | ".join(cells) + " | "
                  + " | ".join(f"{r:.2f}x" for r in ratios) + " |", flush=True)


if __name__ == "__main__":
    main()
