"""The bf16 GEMM (fm.ops.matmul_bf16: float32 in and out, operands rounded to
bf16 while packed) against fastmlp's float32 GEMM, NumPy's float32 matmul
(OpenBLAS) and torch.matmul on bfloat16 tensors, measured in one run.

As a script, a table of GFLOP/s (2 m k n / best time) and the ratios of
matmul_bf16 to the others, for M x K x N products, 1 and 2 threads:

    python benchmarks/bench_gemm_bf16.py [--repeat 7] [--shapes 256x784x1024,...]

Libraries take turns within each repetition, so that a noisy neighbour slows
all of them alike; the best of the repetitions is reported. torch's time
excludes the conversion of its operands to bfloat16 (done once, outside),
fastmlp's includes the rounding (inside its packing). Each result is checked
once against float64 NumPy before timing. Under pytest (with
pytest-benchmark) the same products form the group "gemm-bf16".
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pytest

import fastmlp as fm

SHAPES = [(256, 784, 1024), (512, 1024, 4096), (1024, 4096, 4096)]  # M x K x N


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _set_threads(t):
    fm.set_num_threads(t)
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(t)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=t, user_api="blas")


def _functions(a, b):
    """name -> zero-argument callable computing a @ b, each checked once."""
    c32 = np.empty((a.shape[0], b.shape[1]), np.float32)
    fns = {
        "fastmlp_bf16": lambda: fm.ops.matmul_bf16(a, b, out=c32),
        "fastmlp_f32": lambda: fm.ops.matmul(a, b, out=c32),
        "numpy_f32": lambda: np.matmul(a, b, out=c32),
    }
    torch = _torch()
    if torch is not None:
        ta = torch.from_numpy(a).to(torch.bfloat16)
        tb = torch.from_numpy(b).to(torch.bfloat16)
        fns["torch_bf16"] = lambda: torch.matmul(ta, tb)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    scale = np.sqrt(a.shape[1]) * float(np.max(np.abs(exact)))
    for name, fn in fns.items():
        out = fn()
        out = out.float().numpy() if not isinstance(out, np.ndarray) else out
        # bf16 operands: relative error ~ 2^-8 per product, random signs.
        tol = (0.05 if "bf16" in name else 1e-4) * scale / np.sqrt(a.shape[1])
        assert np.max(np.abs(out - exact)) <= tol, name
    return fns


def measure(m, k, n, threads, repeat):
    """{name: best GFLOP/s} for an m x k by k x n product on `threads` threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    limiter = _set_threads(threads)
    try:
        fns = _functions(a, b)
        best = dict.fromkeys(fns, float("inf"))
        for _ in range(repeat):
            for name, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    return {name: 2.0 * m * n * k / t / 1e9 for name, t in best.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=7, help="repetitions; the best counts")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--shapes", default=",".join("x".join(map(str, s)) for s in SHAPES),
                   help="comma-separated MxKxN")
    args = p.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    threads = [int(t) for t in args.threads.split(",")]
    cfg = fm.show_config()
    torch = _torch()
    print(f"fastmlp {cfg['version']}: isa {cfg['isa']}, bf16_isa {cfg['bf16_isa']}, "
          f"{cfg['cpu_count']} CPUs; numpy {np.__version__}; "
          f"torch {torch.__version__ if torch else 'not installed'}; best of {args.repeat}")
    names = ["fastmlp_bf16", "fastmlp_f32", "numpy_f32"] + (["torch_bf16"] if torch else [])
    head = f"{'M x K x N':>16} {'thr':>3} " + " ".join(f"{n:>12}" for n in names)
    head += "   bf16/f32  bf16/numpy" + ("  bf16/torch" if torch else "")
    print(head + "\n" + "-" * len(head))
    for m, k, n in shapes:
        for t in threads:
            g = measure(m, k, n, t, args.repeat)
            row = f"{f'{m}x{k}x{n}':>16} {t:>3} " + " ".join(f"{g[x]:12.1f}" for x in names)
            row += f"   {g['fastmlp_bf16'] / g['fastmlp_f32']:8.2f}"
            row += f"  {g['fastmlp_bf16'] / g['numpy_f32']:10.2f}"
            if torch:
                row += f"  {g['fastmlp_bf16'] / g['torch_bf16']:10.2f}"
            print(row, flush=True)
    print("GFLOP/s = 2 M K N / best time; ratios > 1: matmul_bf16 is faster.")


@pytest.mark.parametrize("lib", ["fastmlp_bf16", "fastmlp_f32", "numpy_f32", "torch_bf16"])
@pytest.mark.parametrize("shape", SHAPES[:2], ids=lambda s: "x".join(map(str, s)))
def test_gemm_bf16(benchmark, lib, shape):
    if lib == "torch_bf16" and _torch() is None:
        pytest.skip("torch is not installed")
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    fn = _functions(a, b)[lib]  # checks the results once
    benchmark.group = f"gemm-bf16-{m}x{k}x{n}"
    benchmark(fn)
    if benchmark.stats is not None:
        benchmark.extra_info["gflops"] = 2.0 * m * n * k / benchmark.stats.stats.mean / 1e9


if __name__ == "__main__":
    main()
