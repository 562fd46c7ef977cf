#!/usr/bin/env python
"""Compare fastmlp with NumPy, PyTorch and JAX on this machine, in one run.

    python benchmarks/compare.py [--threads 1 2] [--configs S M H L XL]
        [--gemm-sizes 512 1024 2048] [--gemm-configs M L] [--libs fastmlp numpy torch jax]
        [--quick] [--isa generic|avx2|avx512] [--png compare.png]
        [--json out.json] [--md out.md]

Prints, as markdown (ready to paste into a note):
  * the machine, the library versions and fastmlp's configuration;
  * the measured FMA peak (fastmlp.ops.fma_peak) per thread count, f32 and f64;
  * GEMM: square sizes and the products of the M configuration's layers (or
    of those --gemm-configs names), f32
    and f64, for fastmlp, NumPy (OpenBLAS) and torch.mm: time, GFLOP/s,
    fastmlp's speed over the best peer, fastmlp's share of the peak;
  * train_step: time per step for each library and configuration, fastmlp's
    speedup over each, its GFLOP/s and share of the peak;
  * train_step with bfloat16 products (float32 parameters): fastmlp's
    dtype="mixed_bfloat16", torch.autocast("cpu", dtype=torch.bfloat16) and
    JAX with bf16 matmul operands, against fastmlp float32 and each other.

Measurement hygiene: the parent process only orchestrates. Every (kind,
library, thread count) measurement runs in a fresh subprocess of this script
(``--worker SPEC``, SPEC a JSON object; it prints one JSON result line),
with the thread-count variables of every runtime set before anything is
imported and the process pinned to the first `threads` allowed cores. The
parent sleeps between subprocesses so that spinning worker threads of the
previous one are gone. A worker warms its callable up (>= 0.3 s), then takes
the median of several repeats, each a batch of calls lasting ~0.15 s.
``--quick`` shortens all of this drastically, for smoke tests only.

The step builders and their loss checks live in benchmarks/_peers.py.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import time
from importlib import metadata

HERE = os.path.dirname(os.path.abspath(__file__))
RESULT_MARK = "@@compare-result@@ "
ALL_LIBS = ("fastmlp", "numpy", "torch", "jax", "fastmlp-bf16", "torch-bf16", "jax-bf16")
BF16_LIBS = ("fastmlp-bf16", "torch-bf16", "jax-bf16")  # train_step only
GEMM_LIBS = ("fastmlp", "numpy", "torch")  # jax has no GEMM builder
ALL_CONFIGS = ("S", "M", "H", "L", "XL")
PAUSE_S = 0.5  # between two subprocesses


# ==========================================================================
# Worker side: runs in a fresh process, imports the libraries itself.
# ==========================================================================
def _timing_plan(quick):
    """(warm-up seconds, seconds per repeat, repeats)."""
    return (0.02, 0.01, 3) if quick else (0.3, 0.15, 7)


def measure(fn, quick=False):
    """Median seconds per call of fn, timeit-style, with the garbage
    collector off during the timed batches."""
    warm_s, target_s, repeats = _timing_plan(quick)
    t0 = time.perf_counter()
    calls = 0
    while calls < 2 or time.perf_counter() - t0 < warm_s:
        fn()
        calls += 1
    per_call = (time.perf_counter() - t0) / calls
    number = max(1, round(target_s / per_call))
    samples = []
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(number):
                fn()
            samples.append((time.perf_counter() - t) / number)
    finally:
        if gc_was_on:
            gc.enable()
    return {"time": statistics.median(samples), "min": min(samples), "max": max(samples),
            "number": number, "repeats": repeats}


def _set_threads(lib, threads):
    """Thread counts that environment variables cannot set. fastmlp is loaded
    by every worker (_peers builds the reference from it); outside the
    fastmlp workers it only computes the reference losses, on one thread, so
    that it leaves no thread team behind."""
    import fastmlp as fm

    fm.set_num_threads(threads if lib.startswith("fastmlp") else 1)
    if lib.startswith("torch"):
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only allowed before any inter-op work
            pass


def _blas_name():
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # the layout of show_config is not a stable API
        return "unknown"


def _torch_blas():
    import torch

    for line in torch.__config__.parallel_info().splitlines():
        if "Math Kernel Library" in line:
            return "MKL " + line.split("Version")[-1].split("-")[0].strip()
    return "see torch.__config__.show()"


def worker_info(spec):
    """fastmlp's configuration, the BLAS libraries and the FMA peaks."""
    import fastmlp as fm

    _set_threads("fastmlp", spec["threads"])
    out = {"show_config": fm.show_config(), "numpy_blas": _blas_name()}
    try:
        out["torch_blas"] = _torch_blas()
    except ImportError:
        out["torch_blas"] = None
    out["peak"] = {}
    if not hasattr(fm.ops, "fma_peak"):
        out["peak_note"] = "peak: n/a (fastmlp.ops.fma_peak is not in this build)"
        return out
    seconds = 0.1 if spec["quick"] else 0.3
    for dtype in ("float32", "float64"):
        try:
            out["peak"][dtype] = float(fm.ops.fma_peak(dtype=dtype, threads=spec["threads"],
                                                       seconds=seconds))
        except Exception as exc:  # report, never stop the comparison
            out["peak_note"] = f"fma_peak failed: {type(exc).__name__}: {exc}"
    return out


def worker_gemm(spec):
    """Every GEMM case of one library: [{label, dtype, time, ...}]."""
    import numpy as np
    from _peers import build_gemm, gemm_operands

    _set_threads(spec["lib"], spec["threads"])
    results = []
    for case in spec["cases"]:
        m, n, k, ta, tb = case["m"], case["n"], case["k"], case["ta"], case["tb"]
        a, b = gemm_operands(m, n, k, ta, tb, np.dtype(case["dtype"]).type)
        rec = dict(case)
        try:
            fn = build_gemm(spec["lib"], a, b, ta, tb)  # checks the result once
            rec.update(measure(fn, spec["quick"]))
        except AssertionError as exc:  # a wrong result: reported, not timed
            rec.update(error=str(exc), mismatch=True)
        results.append(rec)
        del a, b
    return {"cases": results}


def worker_train(spec):
    """One configuration's train step in one library."""
    from _peers import build_train_step

    _set_threads(spec["lib"], spec["threads"])
    try:
        step = build_train_step(spec["lib"], spec["config"])  # checks the losses once
    except AssertionError as exc:  # a loss mismatch: reported, not timed
        return {"error": str(exc), "mismatch": True}
    return measure(step, spec["quick"])


def run_worker(spec_json):
    spec = json.loads(spec_json)
    # Pin before anything creates a thread: every pool sized from the
    # affinity mask (OpenMP, XLA) then sees only these cores.
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, spec["cores"])
    kind = spec["kind"]
    try:
        result = {"info": worker_info, "gemm": worker_gemm, "train": worker_train}[kind](spec)
    except ImportError as exc:
        result = {"skipped": f"{type(exc).__name__}: {exc}"}
    if "fastmlp" in sys.modules:
        result.setdefault("isa", sys.modules["fastmlp"].show_config()["isa"])
    if hasattr(os, "sched_getaffinity"):
        result["affinity"] = sorted(os.sched_getaffinity(0))
    sys.stdout.flush()
    print(RESULT_MARK + json.dumps(result), flush=True)


# ==========================================================================
# Parent side: orchestration, tables, chart.
# ==========================================================================
def allowed_cores():
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def worker_env(threads, isa, lib=""):
    """The parent's environment with every runtime's thread count set.

    NumPy's BLAS gets the threads only in the numpy worker. Elsewhere it
    only checks results, and a multi-threaded OpenBLAS call leaves its
    threads spinning for a while after it returns, on the cores the measured
    library is about to use (fastmlp's 512^3 float32 product at 2 threads,
    `--threads 2 --skip-train --gemm-sizes 512` on the Zen 4 VM: 2.15 ms
    after 2-thread checks, 1.37 ms after 1-thread ones). torch's x86 wheels
    multiply with MKL and oneDNN, which OPENBLAS_NUM_THREADS does not limit."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[var] = str(threads)
    if lib and lib != "numpy":
        for var in ("OPENBLAS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS"):
            env[var] = "1"
    if threads == 1:
        flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
    if isa:
        env["FASTMLP_ISA"] = isa
    else:
        env.pop("FASTMLP_ISA", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Runner:
    """Starts the worker subprocesses one at a time, a pause between two."""

    def __init__(self, args):
        self.args = args
        self.cores = args.cores or allowed_cores()
        self.started = 0
        self.log = sys.stderr

    def __call__(self, kind, threads, **fields):
        if self.started:
            time.sleep(PAUSE_S)
        self.started += 1
        spec = {"kind": kind, "threads": threads, "cores": self.cores[:threads],
                "quick": self.args.quick, **fields}
        what = " ".join(str(v) for v in (kind, fields.get("lib", ""), fields.get("config", ""),
                                           f"{threads}t") if v)
        print(f"  [{self.started:3d}] {what} ...", end="", file=self.log, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                               json.dumps(spec)], cwd=HERE,
                              env=worker_env(threads, self.args.isa, fields.get("lib", "")),
                              capture_output=True, text=True, check=False)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_MARK)]
        if proc.returncode or not lines:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-6:])
            result = {"error": f"worker exited with {proc.returncode}: {tail}"}
        else:
            result = json.loads(lines[-1][len(RESULT_MARK):])
        status = result.get("error") and "ERROR" or result.get("skipped") and "skipped" or "ok"
        print(f" {status} ({time.perf_counter() - t0:.1f} s)", file=self.log, flush=True)
        return result


def gemm_cases(sizes, configs=("M",)):
    """Square sizes, then the layer products of each configuration in
    `configs` (its distinct shapes: L's hidden layers repeat), f32 and f64."""
    from _peers import CONFIGS, mlp_gemm_shapes  # imports numpy and fastmlp, creates no thread

    cases = []
    for dtype in ("float32", "float64"):
        for s in sizes:
            cases.append({"label": f"{s}^3", "m": s, "n": s, "k": s, "ta": False, "tb": False,
                          "dtype": dtype})
        for name in configs:
            cfg, seen = CONFIGS[name], set()
            for m, n, k, ta, tb, label in mlp_gemm_shapes(cfg.sizes, cfg.batch):
                if (m, n, k, ta, tb) in seen:
                    continue
                seen.add((m, n, k, ta, tb))
                op = ("T" if ta else "N") + ("T" if tb else "N")
                cases.append({"label": f"{name} {label} {m}x{n}x{k} {op}", "m": m, "n": n,
                              "k": k, "ta": ta, "tb": tb, "dtype": dtype})
    return cases


def _cpu_times():
    """{cpu index: (busy, total)} jiffies from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *vals = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                v = [int(x) for x in vals]
                idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
                out[int(name[3:])] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


def cores_busy(seconds=0.5):
    """Share of time each allowed core spent busy over `seconds`, while this
    script does nothing: other processes on a shared machine. None when
    /proc/stat cannot be read."""
    try:
        a = _cpu_times()
        time.sleep(seconds)
        b = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    busy = {}
    for c in allowed_cores():
        if c in a and c in b and b[c][1] > a[c][1]:
            busy[str(c)] = round((b[c][0] - a[c][0]) / (b[c][1] - a[c][1]), 3)
    return busy


def machine_info():
    model = "unknown CPU"
    flags = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    simd = [f for f in ("sse4_2", "avx", "fma", "avx2", "avx512f", "avx512_bf16") if f in flags]
    return {"cpu": model, "simd": simd, "cpu_count": os.cpu_count(),
            "allowed_cores": allowed_cores(), "python": sys.version.split()[0]}


def versions():
    out = {}
    for name in ("fastmlp", "numpy", "torch", "jax", "jaxlib", "matplotlib"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_all(args):
    from _peers import train_step_flops, CONFIGS

    run = Runner(args)
    res = {"machine": machine_info(), "versions": versions(),
           "options": {"threads": args.threads, "cores": run.cores, "configs": args.configs,
                       "libs": args.libs,
                       "gemm_sizes": args.gemm_sizes, "gemm_configs": args.gemm_configs,
                       "quick": args.quick, "isa": args.isa},
           "info": {}, "gemm": [], "train": [], "problems": [], "mismatch": False}
    # Other processes on the machine distort every timing, multi-thread ones
    # most (a team waits for its slowest thread): look before and after.
    res["machine"]["busy_before"] = cores_busy()
    if max(args.threads) > len(run.cores):
        res["problems"].append(f"{max(args.threads)} threads asked for, {len(run.cores)} cores "
                               "allowed: the larger runs share cores")
    cases = gemm_cases(args.gemm_sizes, args.gemm_configs)
    for t in args.threads:
        info = run("info", t)
        res["info"][str(t)] = info
        if info.get("error"):
            res["problems"].append(f"info, {t} thread(s): {info['error']}")
        if not args.skip_gemm:
            for lib in [x for x in GEMM_LIBS if x in args.libs]:
                r = run("gemm", t, lib=lib, cases=cases)
                if "cases" not in r:
                    res["problems"].append(f"gemm {lib}, {t} thread(s): "
                                           f"{r.get('error') or r.get('skipped')}")
                    continue
                for c in r["cases"]:
                    c.update(lib=lib, threads=t, isa=r.get("isa"))
                    if "time" in c:
                        c["gflops"] = 2.0 * c["m"] * c["n"] * c["k"] / c["time"] / 1e9
                    else:
                        res["mismatch"] |= bool(c.get("mismatch"))
                        res["problems"].append(f"gemm {lib} {c['label']} {c['dtype']}, "
                                               f"{t} thread(s): {c['error']}")
                    res["gemm"].append(c)
        if not args.skip_train:
            for name in args.configs:
                cfg = CONFIGS[name]
                for lib in args.libs:
                    r = run("train", t, lib=lib, config=name)
                    r.update(lib=lib, threads=t, config=name)
                    if "time" in r:
                        r["gflops"] = train_step_flops(cfg.sizes, cfg.batch) / r["time"] / 1e9
                    else:
                        res["mismatch"] |= bool(r.get("mismatch"))
                        res["problems"].append(f"train {name} {lib}, {t} thread(s): "
                                               f"{r.get('error') or r.get('skipped')}")
                    res["train"].append(r)
    time.sleep(PAUSE_S)
    res["machine"]["busy_after"] = cores_busy()
    for when in ("before", "after"):
        used = run.cores[:max(args.threads)]
        busy = {c: x for c, x in (res["machine"][f"busy_{when}"] or {}).items()
                if x > 0.1 and int(c) in used}
        if busy:
            res["problems"].append(
                f"other processes kept cores busy {when} the run ("
                + ", ".join(f"core {c}: {100 * x:.0f}%" for c, x in busy.items())
                + "): the timings, multi-thread ones above all, are not trustworthy")
    return res


# -- formatting ------------------------------------------------------------
def fmt_time(s):
    if s is None:
        return "–"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


def fmt_num(x, digits=3, suffix=""):
    return "–" if x is None or not math.isfinite(x) else f"{x:.{digits}g}{suffix}"


def fmt_pct(x):
    return "–" if x is None else f"{100 * x:.0f}%"


def md_table(header, rows, left=(0,)):
    """A markdown table; the columns numbered in `left` are left-aligned,
    the others (numbers) right-aligned."""
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" if i in left else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def peak_of(res, threads, dtype):
    return res["info"].get(str(threads), {}).get("peak", {}).get(dtype)


def cell_status(rec):
    if rec is None:
        return "–"
    if "error" in rec:
        return "**error**"
    if "skipped" in rec:
        return "n/a"
    return fmt_time(rec["time"])


def _fmt_busy(busy):
    if not busy:
        return "unknown"
    return ", ".join(f"core {c} {100 * x:.0f}%" for c, x in busy.items())


def report(res):
    """The whole result as markdown text."""
    m, v = res["machine"], res["versions"]
    info0 = next(iter(res["info"].values()), {})
    cfg = info0.get("show_config", {})
    out = ["# fastmlp vs NumPy / PyTorch / JAX", ""]
    out.append(f"- CPU: {m['cpu']} ({', '.join(m['simd'])}); {m['cpu_count']} cores, "
               f"allowed {m['allowed_cores']}; busy with other processes before the run "
               f"{_fmt_busy(m.get('busy_before'))}, after {_fmt_busy(m.get('busy_after'))}")
    out.append(f"- fastmlp {v['fastmlp']}: GEMM kernel `{cfg.get('isa', '?')}`, "
               f"{cfg.get('compiler', '?')}, OpenMP {cfg.get('openmp', '?')}"
               + (f" (FASTMLP_ISA={res['options']['isa']})" if res["options"]["isa"] else ""))
    out.append(f"- numpy {v['numpy']} ({info0.get('numpy_blas', '?')}); torch {v['torch']} "
               f"({info0.get('torch_blas') or '?'}); jax {v['jax']} / jaxlib {v['jaxlib']}; "
               f"Python {m['python']}")
    o = res["options"]
    out.append(f"- threads {o['threads']} pinned to cores {o['cores']} (first t for t threads); timing {'QUICK (smoke test, not a measurement)' if o['quick'] else 'median of 7 repeats of ~0.15 s after >= 0.3 s warm-up'}; "
               "each library and thread count in a fresh pinned process")
    out.append("")

    out += ["## Measured FMA peak (GFLOP/s)", ""]
    rows = []
    for t, info in res["info"].items():
        p = info.get("peak", {})
        note = info.get("peak_note", "") or info.get("error", "")
        rows.append([t, fmt_num(p.get("float32"), 4) if p.get("float32") else "n/a",
                     fmt_num(p.get("float64"), 4) if p.get("float64") else "n/a", note])
    out += [md_table(["threads", "f32", "f64", "note"], rows, left=(0, 3)), ""]

    if res["gemm"]:
        libs = [x for x in GEMM_LIBS if any(c["lib"] == x for c in res["gemm"])]
        peers = [x for x in libs if x != "fastmlp"]
        for t in res["options"]["threads"]:
            recs = [c for c in res["gemm"] if c["threads"] == t]
            if not recs:
                continue
            out += [f"## GEMM, {t} thread{'s' if t > 1 else ''}", ""]
            keys = []
            for c in recs:
                if (c["dtype"], c["label"]) not in keys:
                    keys.append((c["dtype"], c["label"]))
            rows = []
            for dtype, label in keys:
                by = {c["lib"]: c for c in recs if c["dtype"] == dtype and c["label"] == label}
                gf = {x: by[x].get("gflops") for x in libs if x in by}
                best_peer = max((gf[x] for x in peers if gf.get(x)), default=None)
                ratio = gf["fastmlp"] / best_peer if gf.get("fastmlp") and best_peer else None
                peak = peak_of(res, t, dtype)
                pct = gf["fastmlp"] / peak if gf.get("fastmlp") and peak else None
                rows.append([label, dtype.replace("float", "f")]
                            + [cell_status(by.get(x)) for x in libs]
                            + [fmt_num(gf.get(x)) for x in libs]
                            + [fmt_num(ratio, 3, "x"), fmt_pct(pct)])
            header = (["shape (m x n x k)", "dtype"] + [f"{x} time" for x in libs]
                      + [f"{x} GFLOP/s" for x in libs]
                      + [f"fastmlp / best({', '.join(peers)})", "fastmlp % peak"])
            out += [md_table(header, rows, left=(0, 1)), ""]

    if res["train"]:
        libs = [x for x in ALL_LIBS if x not in BF16_LIBS
                and any(r["lib"] == x for r in res["train"])]
        peers = [x for x in libs if x != "fastmlp"]
        for t in res["options"]["threads"]:
            recs = [r for r in res["train"] if r["threads"] == t]
            if not recs:
                continue
            out += [f"## train_step (float32, SGD), {t} thread{'s' if t > 1 else ''}", ""]
            rows = []
            for name in res["options"]["configs"]:
                by = {r["lib"]: r for r in recs if r["config"] == name}
                fast = by.get("fastmlp", {}).get("time")
                speed = [fmt_num(by[p]["time"] / fast, 3, "x")
                         if fast and by.get(p, {}).get("time") else "–" for p in peers]
                gf = by.get("fastmlp", {}).get("gflops")
                peak = peak_of(res, t, "float32")
                rows.append([name] + [cell_status(by.get(x)) for x in libs] + speed
                            + [fmt_num(gf), fmt_pct(gf / peak if gf and peak else None)])
            header = (["config"] + libs + [f"fastmlp vs {p}" for p in peers]
                      + ["fastmlp GFLOP/s", "fastmlp % peak"])
            out += [md_table(header, rows), ""]
        out += ["Configs: S 64-32-10 relu b32 CE; M 784-256-256-10 relu b128 CE; "
                "H 28-300x5-1 tanh b100 BCE; L 784-1024x3-10 relu b256 CE; "
                "XL 1024-4096-4096-1024 relu b512 MSE. 'fastmlp vs X' = X's time / fastmlp's "
                "(> 1: fastmlp faster). GFLOP/s counts the step's GEMMs only.", ""]

    out += _bf16_tables(res)

    if res["problems"]:
        out += ["## Problems", ""] + [f"- {p}" for p in res["problems"]] + [""]
    return "\n".join(out)


def _bf16_tables(res):
    """train_step with bf16 products: fastmlp mixed_bfloat16 against fastmlp
    float32 (the speed bf16 buys) and against the peers' bf16 steps."""
    libs = [x for x in BF16_LIBS if any(r["lib"] == x for r in res["train"])]
    if not libs:
        return []
    peers = [x for x in libs if x != "fastmlp-bf16"]
    out = []
    for t in res["options"]["threads"]:
        recs = [r for r in res["train"] if r["threads"] == t]
        if not any(r["lib"] in libs for r in recs):
            continue
        out += [f"## train_step, bfloat16 products (float32 parameters), {t} "
                f"thread{'s' if t > 1 else ''}", ""]
        rows = []
        for name in res["options"]["configs"]:
            by = {r["lib"]: r for r in recs if r["config"] == name}
            mixed = by.get("fastmlp-bf16", {}).get("time")
            f32 = by.get("fastmlp", {}).get("time")
            ratios = [fmt_num(f32 / mixed, 3, "x") if mixed and f32 else "–"]
            ratios += [fmt_num(by[p]["time"] / mixed, 3, "x")
                       if mixed and by.get(p, {}).get("time") else "–" for p in peers]
            rows.append([name, cell_status(by.get("fastmlp"))]
                        + [cell_status(by.get(x)) for x in libs] + ratios)
        header = (["config", "fastmlp f32"] + libs + ["fastmlp-bf16 vs fastmlp f32"]
                  + [f"fastmlp-bf16 vs {p}" for p in peers])
        out += [md_table(header, rows), ""]
    out += ["fastmlp-bf16: dtype=\"mixed_bfloat16\" (operands rounded to bf16 while packed, "
            "float32 accumulation; AVX512-BF16 kernel where the CPU has it); torch-bf16: the "
            "eager step under torch.autocast(\"cpu\", dtype=torch.bfloat16); jax-bf16: bf16 "
            "matmul operands with float32 accumulation (whether XLA uses bf16 instructions "
            "for them is XLA's choice). 'vs X' = X's time / fastmlp-bf16's.", ""]
    return out


def draw(res, path):
    """Two panels: train_step speedup of fastmlp over each peer (log scale),
    and float32 GEMM efficiency (% of peak, or GFLOP/s without a peak)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = res["options"]["threads"]
    colors = {"numpy": "tab:blue", "torch": "tab:orange", "jax": "tab:green",
              "fastmlp": "tab:red"}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 5.8))

    # Panel 1: bars per (peer, threads) within each config.
    configs = [c for c in res["options"]["configs"]
               if any(r["config"] == c for r in res["train"])]
    peers = [x for x in ("numpy", "torch", "jax") if any(r["lib"] == x for r in res["train"])]
    series = [(p, t) for p in peers for t in threads]
    width = 0.8 / max(1, len(series))
    for j, (p, t) in enumerate(series):
        xs, ys = [], []
        for i, c in enumerate(configs):
            by = {r["lib"]: r for r in res["train"] if r["config"] == c and r["threads"] == t}
            if by.get("fastmlp", {}).get("time") and by.get(p, {}).get("time"):
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(by[p]["time"] / by["fastmlp"]["time"])
        hatch = None if t == threads[0] else "//"
        ax1.bar(xs, ys, width, color=colors[p], hatch=hatch, edgecolor="white",
                label=f"vs {p}, {t} thread{'s' if t > 1 else ''}")
        for x, y in zip(xs, ys):
            ax1.annotate(f"{y:.2g}", (x, y), ha="center", va="bottom", fontsize=7)
    if not series or not configs:
        ax1.text(0.5, 0.5, "no train_step measured", ha="center", transform=ax1.transAxes)
    ax1.axhline(1.0, color="black", lw=1)
    ax1.set_yscale("log")
    ax1.yaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax1.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}x"))
    ax1.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax1.set_xticks(range(len(configs)), configs)
    ax1.set_xlabel("configuration")
    ax1.set_ylabel("speedup of fastmlp (peer time / fastmlp time)")
    ax1.set_title("train_step: > 1 means fastmlp is faster")
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(fontsize=8)

    # Panel 2: float32 GEMM, one line per (library, threads).
    recs = [c for c in res["gemm"] if c["dtype"] == "float32" and "gflops" in c]
    labels = []
    for c in recs:
        if c["label"] not in labels:
            labels.append(c["label"])
    have_peak = all(peak_of(res, t, "float32") for t in threads)
    for lib in GEMM_LIBS:
        for t in threads:
            pts = {c["label"]: c["gflops"] for c in recs if c["lib"] == lib and c["threads"] == t}
            if not pts:
                continue
            xs = [i for i, lab in enumerate(labels) if lab in pts]
            ys = [pts[labels[i]] for i in xs]
            if have_peak:
                ys = [100 * y / peak_of(res, t, "float32") for y in ys]
            ax2.plot(xs, ys, marker="o", color=colors[lib], ls="-" if t == threads[0] else "--",
                     label=f"{lib}, {t} thread{'s' if t > 1 else ''}")
    ax2.set_xticks(range(len(labels)), labels, rotation=35, ha="right", fontsize=8)
    ax2.set_ylabel("% of measured FMA peak" if have_peak else "GFLOP/s (no peak measured)")
    ax2.set_ylim(bottom=0)
    ax2.set_title("GEMM, float32")
    ax2.grid(axis="y", alpha=0.3)
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=8)
    else:
        ax2.text(0.5, 0.5, "no GEMM measured", ha="center", transform=ax2.transAxes)

    isa = next(iter(res["info"].values()), {}).get("show_config", {}).get("isa", "?")
    quick = " — QUICK smoke run" if res["options"]["quick"] else ""
    fig.suptitle(f"fastmlp {res['versions']['fastmlp']} ({isa}) on {res['machine']['cpu']}, "
                 f"threads {', '.join(map(str, threads))}{quick}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--configs", nargs="+", default=list(ALL_CONFIGS), choices=ALL_CONFIGS)
    p.add_argument("--libs", nargs="+", default=list(ALL_LIBS), choices=ALL_LIBS,
                   help="libraries to run (fastmlp is needed for speedups and ratios)")
    p.add_argument("--cores", type=int, nargs="+",
                   help="cores to pin to, in order: a t-thread run uses the first t "
                        "(default: all allowed cores, lowest first)")
    p.add_argument("--gemm-sizes", type=int, nargs="+", default=[512, 1024, 2048])
    p.add_argument("--gemm-configs", nargs="+", default=["M"], choices=ALL_CONFIGS,
                   help="configurations whose layer products are timed (default M; L adds "
                        "its 256-row products, the widest of which take seconds in float64)")
    p.add_argument("--skip-gemm", action="store_true")
    p.add_argument("--skip-train", action="store_true")
    p.add_argument("--quick", action="store_true",
                   help="very short timings: a smoke test of the script, not a measurement")
    p.add_argument("--isa", choices=["generic", "avx2", "avx512"],
                   help="force fastmlp's GEMM kernel (FASTMLP_ISA in the workers)")
    p.add_argument("--png", help="write a chart (needs matplotlib)")
    p.add_argument("--json", help="write the raw results")
    p.add_argument("--md", help="write the markdown report as well as printing it")
    p.add_argument("--worker", metavar="SPEC", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if any(t < 1 for t in args.threads):
        p.error("--threads: expected positive integers")
    if args.cores and not set(args.cores) <= set(allowed_cores()):
        p.error(f"--cores: expected cores among {allowed_cores()}, got {args.cores}")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        run_worker(args.worker)
        return 0
    sys.path.insert(0, HERE)
    # The parent imports numpy and fastmlp (for shapes and flop counts) but
    # computes nothing: keep it from starting thread pools of its own. The
    # workers get their own values from worker_env.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    print(f"compare.py: running workers (threads {args.threads}) ...", file=sys.stderr)
    res = run_all(args)
    text = report(res)
    print(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    if args.png:
        try:
            draw(res, args.png)
            print(f"chart: {args.png}", file=sys.stderr)
        except ImportError:
            print("chart: matplotlib is not installed; no PNG written", file=sys.stderr)
    return 1 if res["mismatch"] else 0  # a library computed something else


if __name__ == "__main__":
    sys.exit(main())
