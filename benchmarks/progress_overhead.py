#!/usr/bin/env python
"""What the live progress bar costs fit: the same fit with verbose=0 and with
the live bar (built-in and tqdm) drawn to a terminal, measured alternately in
one run; prints the best time of each and its ratio to verbose=0.

    python benchmarks/progress_overhead.py [--rounds 5] [--threads N]

The fit is a small network at batch 32 (many short steps: where a bar that
took the GIL or a lock per step would show): 60000x64 float32, 64-256-256-10
relu, Adam, 2 epochs. The terminal is a fake one (a StringIO that says it is
a tty) so the drawing thread does its full work without a real screen.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np

import fastmlp as fm
from fastmlp import _progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        fm.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60000, 64)).astype(np.float32)
    y = rng.integers(0, 10, 60000)
    model = fm.MLP([64, 256, 256, 10], loss="cross_entropy", dtype="float32", seed=0)
    model.compile(optimizer=fm.optim.Adam(1e-3))
    model.fit(X[:256], y[:256], epochs=1, verbose=0)  # build and warm up

    real = _progress.reporter
    modes = {"verbose=0": None, "bar (built-in)": False}
    if _progress._load_tqdm() is not None:
        modes["bar (tqdm)"] = True
    best = {k: float("inf") for k in modes}
    try:
        for _ in range(args.rounds):
            for name, use_tqdm in modes.items():
                term = _Terminal()
                if use_tqdm is None:
                    verbose = 0
                else:
                    verbose = 1
                    _progress.reporter = (
                        lambda v, net, e, nb, stream=None, u=use_tqdm, t=term:
                        _progress.LiveBar(net, e, nb, t, use_tqdm=u))
                t0 = time.perf_counter()
                model.fit(X, y, epochs=2, batch_size=32, verbose=verbose)
                best[name] = min(best[name], time.perf_counter() - t0)
                _progress.reporter = real
    finally:
        _progress.reporter = real
    base = best["verbose=0"]
    steps = 2 * (60000 // 32 + 1)
    print(f"threads {fm.get_num_threads()}, {steps} steps, best of {args.rounds}")
    for name, t in best.items():
        print(f"{name:16s} {t:7.3f} s  {t / steps * 1e6:7.1f} us/step  ratio {t / base:.3f}")


if __name__ == "__main__":
    main()
