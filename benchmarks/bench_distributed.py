"""Data-parallel training over MPI on one machine: what the reduction costs.

    python benchmarks/bench_distributed.py [--rounds 3] [--steps 20]

launches itself under ``mpiexec -n P python -m mpi4py`` for each layout and
prints, measured in the same run:

1. the all-reduce time of flat float32 buffers from 1e4 to 1e7 values
   (2 processes);
2. configuration L (784-1024-1024-1024-10, relu, cross-entropy, Adam,
   float32, global batch 256) per step, split into compute (the rank's
   forward and backward), communication (the gradient reduction and the
   loss) and update, for 1 process x C threads and P processes x C/P threads,
   in fast, sharded and reproducible mode (sharded: communication is the
   reduce-scatter, update the shard's step and the all-gather);
3. the cost of reproducible over fast mode, and P processes x 1 thread
   against 1 process x P threads (plain ``train_step``, no MPI) in samples
   per second;
4. the same comparison through ``model.fit``: whole epochs of 40 batches,
   the rows gathered from a shuffled array, the epoch loop and history.

Layouts are run round-robin ``--rounds`` times and the best round of each is
reported (the median beside it), so that a noisy neighbour hurts all of them
alike. Needs mpi4py and an MPI (``pip install 'fastmlp[mpi]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

L_SIZES = [784, 1024, 1024, 1024, 10]
BATCH = 256


def _worker(args):
    from mpi4py import MPI

    import fastmlp as fm
    from fastmlp import distributed as dist

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    fm.set_num_threads(args.threads)
    out = {}
    if args.allreduce:
        for n in (10_000, 100_000, 1_000_000, 10_000_000):
            a = np.ones(n, np.float32)
            ts = []
            for _ in range(12 if n < 10_000_000 else 5):
                comm.Barrier()
                t = time.perf_counter()
                comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM)
                ts.append(time.perf_counter() - t)
            out[str(n)] = [min(ts), float(np.median(ts))]
        if rank == 0:
            print(json.dumps(out))
        return
    if args.mode.startswith("fit-"):
        # Whole epochs through model.fit (the rows gathered from a shuffled
        # array, the epoch loop, history): 40 batches of 256 per fit.
        rng = np.random.default_rng(0)
        X = rng.standard_normal((BATCH * 40, L_SIZES[0])).astype(np.float32)
        y = rng.integers(0, L_SIZES[-1], len(X)).astype(np.int32)
        model = fm.MLP(L_SIZES, activation="relu", seed=0)
        model.compile(optimizer=fm.optim.Adam(lr=1e-4))
        red = args.mode[4:]
        kw = {} if red == "none" else {"comm": comm, "reduction": red}
        model.fit(X[:2 * BATCH], y[:2 * BATCH], epochs=1, batch_size=BATCH, verbose=0, **kw)
        ts = []
        for _ in range(3):
            comm.Barrier()
            t = time.perf_counter()
            model.fit(X, y, epochs=1, batch_size=BATCH, verbose=0, **kw)
            ts.append(time.perf_counter() - t)
        if rank == 0:
            print(json.dumps({"samples": [len(X) / min(ts), len(X) / float(np.median(ts))]}))
        return
    rng = np.random.default_rng(0)
    X = rng.standard_normal((BATCH, L_SIZES[0])).astype(np.float32)
    y = rng.integers(0, L_SIZES[-1], BATCH).astype(np.int32)
    model = fm.MLP(L_SIZES, activation="relu", seed=0)
    model.compile(optimizer=fm.optim.Adam(lr=1e-4))
    model.train_step(X[:2], y[:2])  # builds the network and its workspace
    net = model._net
    if args.mode == "none":  # one process, no MPI in the step
        for _ in range(3):
            model.train_step(X, y)
        ts = []
        for _ in range(args.steps):
            t = time.perf_counter()
            model.train_step(X, y)
            ts.append(time.perf_counter() - t)
        print(json.dumps({"step": [min(ts), float(np.median(ts))]}))
        return
    mode, piece_rows = dist.check_reduction(
        dist.Reproducible(128) if args.mode == "rep128" else args.mode)
    reducer = dist._Reducer(comm, mode, np.float32)
    plan = dist._Plan(BATCH, size, rank, piece_rows)
    shards = dist._Shards(comm, MPI, net, np.float32, MPI.FLOAT) if mode == "sharded" else None
    Xl = np.ascontiguousarray(X[plan.lo:plan.hi])
    yl = np.ascontiguousarray(y[plan.lo:plan.hi])
    hook = reducer.batch_norm_hook(plan)
    keys = ("compute", "wait", "comm", "update", "step")
    parts = {k: [] for k in keys}
    for i in range(3 + args.steps):
        comm.Barrier()
        t0 = time.perf_counter()
        r = net.forward_backward_pieces(Xl, yl, None, None, plan.lo, BATCH, float(BATCH),
                                        plan.bounds, hook, **plan.fold)
        t1 = time.perf_counter()
        if args.timed_wait:
            comm.Barrier()  # the other ranks' compute, apart from the transfer
        t1b = time.perf_counter()
        if shards is None:
            reducer.gradients(net, plan)
        else:  # the reduce-scatter; the all-gather is timed with the update
            shards.reduce_scatter(net.grads_flat())
        loss = float(reducer.ordered_sum(r["losses"].reshape(-1, 1), plan)[0])
        t2 = time.perf_counter()
        if shards is None:
            net.finish_step(loss, BATCH)
        else:
            net.finish_shard(loss, BATCH, shards.lo, shards.hi, shards.sum)
            shards.all_gather(net.params_flat(), again=False)
        t3 = time.perf_counter()
        if i >= 3:
            for k, v in zip(keys, (t1 - t0, t1b - t1, t2 - t1b, t3 - t2, t3 - t0)):
                parts[k].append(v)
    # Per step, the slowest rank's time is the step's.
    mine = np.array([np.median(parts[k]) for k in keys] + [min(parts["step"])])
    worst = np.empty_like(mine)
    comm.Allreduce(mine, worst, op=MPI.MAX)
    if rank == 0:
        out = dict(zip(keys[:-1], worst[:4].tolist()))
        out["step"] = [float(worst[5]), float(worst[4])]
        print(json.dumps(out))
    if shards is not None:
        shards.close()


def _launch(procs, threads, mode, steps, allreduce=False):
    cmd = [sys.executable, __file__, "--worker", "--threads", str(threads), "--mode", mode,
           "--steps", str(steps), "--timed-wait"]
    if allreduce:
        cmd.append("--allreduce")
    if mode not in ("none", "fit-none") or allreduce:
        # Processes of one thread each bound to a core (hydra's -bind-to), as a
        # batch system would place them.
        bind = ["-bind-to", "core"] if procs > 1 and threads == 1 else []
        cmd = ["mpiexec", *bind, "-n", str(procs), sys.executable, "-m", "mpi4py"] + cmd[1:]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--allreduce", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--timed-wait", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="fast", help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per layout")
    ap.add_argument("--rounds", type=int, default=3, help="round-robin repetitions")
    ap.add_argument("--procs", type=int, default=None,
                    help="processes of the multi-process layouts (default: the cores, >= 2)")
    args = ap.parse_args()
    if args.worker:
        _worker(args)
        return
    cores = os.cpu_count() or 1
    procs = args.procs or max(2, cores)
    per = max(1, cores // procs)
    print(f"# {cores} cores; {procs} processes x {per} thread(s) against 1 process x "
          f"{cores} thread(s); configuration L, global batch {BATCH}, float32")
    ar = _launch(2, 1, "fast", 0, allreduce=True)
    print("\n## Allreduce of float32 buffers, 2 processes (best / median)")
    print("| values | time | GB/s of buffer |")
    print("|---|---|---|")
    for n, (best, med) in ar.items():
        print(f"| {int(n):.0e} | {best * 1e3:.3f} ms / {med * 1e3:.3f} ms | "
              f"{int(n) * 4 / best / 1e9:.2f} |")
    layouts = [("1 x %d, no MPI" % cores, 1, cores, "none"),
               ("1 x %d, fast" % cores, 1, cores, "fast"),
               ("1 x %d, reproducible" % cores, 1, cores, "reproducible"),
               ("%d x %d, fast" % (procs, per), procs, per, "fast"),
               ("%d x %d, sharded" % (procs, per), procs, per, "sharded"),
               ("%d x %d, reproducible" % (procs, per), procs, per, "reproducible"),
               ("%d x %d, reproducible(128)" % (procs, per), procs, per, "rep128")]
    results = {name: [] for name, *_ in layouts}
    for _ in range(args.rounds):
        for name, p, t, mode in layouts:
            results[name].append(_launch(p, t, mode, args.steps))
    print("\n## Configuration L step (ms; compute, wait (for the slowest rank's compute), "
          "communication and update are medians, the largest over the ranks; step is best / "
          "median)")
    print("| layout | compute | wait | comm | update | step | samples/s |")
    print("|---|---|---|---|---|---|---|")
    best, med = {}, {}
    for name, *_ in layouts:
        rs = results[name]
        step_best = min(r["step"][0] for r in rs)
        step_med = float(np.median([r["step"][1] for r in rs]))
        best[name], med[name] = step_best, step_med
        if "compute" in rs[0]:
            c, w, m, u = (float(np.median([r[k] for r in rs])) * 1e3
                          for k in ("compute", "wait", "comm", "update"))
            cols = f"{c:.2f} | {w:.2f} | {m:.2f} | {u:.2f}"
        else:
            cols = "- | - | - | -"
        print(f"| {name} | {cols} | {step_best * 1e3:.2f} / {step_med * 1e3:.2f} | "
              f"{BATCH / step_best:.0f} |")
    single = "1 x %d, no MPI" % cores
    fast = "%d x %d, fast" % (procs, per)
    sharded = "%d x %d, sharded" % (procs, per)
    rep = "%d x %d, reproducible" % (procs, per)
    rep128 = "%d x %d, reproducible(128)" % (procs, per)

    def ratio(a, b):
        return f"{best[a] / best[b]:.3f}x best, {med[a] / med[b]:.3f}x median"

    print(f"\nreproducible over fast, {procs} x {per}: {ratio(rep, fast)} of the step time "
          f"(pieces of 128 rows: {ratio(rep128, fast)})")
    print(f"{procs} x {per} against 1 x {cores} (no MPI), samples/s: fast {ratio(single, fast)}; "
          f"sharded {ratio(single, sharded)}; reproducible {ratio(single, rep)}")
    # The same through model.fit, whole epochs (round-robin as above).
    fits = [("1 x %d, fit" % cores, 1, cores, "fit-none")] + [
        ("%d x %d, fit %s" % (procs, per, m), procs, per, "fit-" + m)
        for m in ("fast", "sharded", "reproducible")]
    got = {name: [] for name, *_ in fits}
    for _ in range(args.rounds):
        for name, p, t, mode in fits:
            got[name].append(_launch(p, t, mode, args.steps)["samples"])
    print("\n## Through model.fit: samples/s, best (median) over rounds, 40 batches of 256 a fit")
    base = max(s[0] for s in got[fits[0][0]])
    base_med = float(np.median([s[1] for s in got[fits[0][0]]]))
    for name, *_ in fits:
        b = max(s[0] for s in got[name])
        m = float(np.median([s[1] for s in got[name]]))
        print(f"| {name} | {b:.0f} ({m:.0f}) | {b / base:.3f}x ({m / base_med:.3f}x) |")


if __name__ == "__main__":
    main()
