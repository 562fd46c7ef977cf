"""MNIST recipe, fastmlp vs a PyTorch loop of the same network, one run.

    python benchmarks/mnist_vs_torch.py [--epochs 10] [--seeds 0 1 2] [--threads 2]

Network 784-256-128-10 ReLU, dropout 0.2 after each hidden layer, Adam lr 1e-3,
batch 128 (shuffled), cosine annealing over the epochs, float32. Prints test
accuracy per seed and seconds per epoch for both, and the ratio. Also measures
the epoch loop's overhead over bare train_step calls on config M
(784-256-256-10, batch 128).
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

import fastmlp as fm
from fastmlp.datasets import load_mnist

parser = argparse.ArgumentParser()
parser.add_argument("--data", default=None)
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--seeds", type=int, nargs="+", default=[0])
parser.add_argument("--threads", type=int, default=os.cpu_count())
parser.add_argument("--no-torch", action="store_true")
args = parser.parse_args()

fm.set_num_threads(args.threads)
path = args.data
if path is None and not os.environ.get("FASTMLP_DATA"):
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
(Xtr, ytr), (Xte, yte) = load_mnist(path)
Xtr = Xtr.astype(np.float32) / 255.0
Xte = Xte.astype(np.float32) / 255.0
E, B = args.epochs, 128


def run_fastmlp(seed):
    m = fm.MLP([784, 256, 128, 10], activation="relu", dropout=0.2, seed=seed)
    m.compile(fm.optim.Adam(1e-3), lr_schedule=fm.optim.CosineAnnealingLR(T_max=E))
    h = m.fit(Xtr, ytr, epochs=E, batch_size=B, verbose=0)
    return m.score(Xte, yte), float(np.median(h["time"]))


def run_torch(seed):
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Dropout(0.2),
                        nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=E)
    loss_fn = nn.CrossEntropyLoss()
    X = torch.from_numpy(Xtr)
    y = torch.from_numpy(ytr.astype(np.int64))
    g = torch.Generator().manual_seed(seed)
    times = []
    for _ in range(E):
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(X.shape[0], generator=g)
        for i in range(0, X.shape[0], B):
            idx = perm[i:i + B]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(X[idx]), y[idx])
            loss.backward()
            opt.step()
        sched.step()
        times.append(time.perf_counter() - t0)
    net.eval()
    with torch.no_grad():
        acc = (net(torch.from_numpy(Xte)).argmax(1).numpy() == yte).mean()
    return float(acc), float(np.median(times))


print(f"MNIST {E} epochs, batch {B}, {args.threads} thread(s), fastmlp isa "
      f"{fm.show_config()['isa']}")
for seed in args.seeds:
    acc, t = run_fastmlp(seed)
    line = f"seed {seed}: fastmlp test acc {acc:.4f}, {t:.3f} s/epoch"
    if not args.no_torch:
        tacc, tt = run_torch(seed)
        line += f" | torch test acc {tacc:.4f}, {tt:.3f} s/epoch | fastmlp {tt / t:.2f}x faster"
    print(line, flush=True)

# Epoch-loop overhead on config M: fit's C++ loop vs bare train_step calls on
# pre-sliced contiguous batches (same rows, same order, SGD).
rng = np.random.default_rng(0)
n = 128 * 60
X = rng.standard_normal((n, 784)).astype(np.float32)
y = rng.integers(0, 10, n)
m1 = fm.MLP([784, 256, 256, 10], seed=0).compile(fm.optim.SGD(lr=0.01))
m2 = fm.MLP([784, 256, 256, 10], seed=0).compile(fm.optim.SGD(lr=0.01))
y32 = y.astype(np.int32)
batches = [(np.ascontiguousarray(X[i:i + 128]), y32[i:i + 128]) for i in range(0, n, 128)]
m1.fit(X, y, epochs=1, batch_size=128, shuffle=False, verbose=0)  # warm-up
for xb, yb in batches[:5]:
    m2._net.train_step(xb, yb, None, None)
fit_t, step_t = [], []
for _ in range(5):
    t0 = time.perf_counter()
    m1.fit(X, y, epochs=1, batch_size=128, shuffle=True, verbose=0)
    fit_t.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    for xb, yb in batches:
        m2._net.train_step(xb, yb, None, None)
    step_t.append(time.perf_counter() - t0)
f, s = min(fit_t), min(step_t)
print(f"config M, {n // 128} batches: fit epoch {f * 1e3:.1f} ms, bare train_step calls "
      f"{s * 1e3:.1f} ms, epoch-loop overhead {100 * (f / s - 1):+.1f}%")
