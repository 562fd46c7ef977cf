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
(Xtr, ytr), (Xte, yte) = load_mnist(path=path)
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


# Epoch-loop overhead on config M (784-256-256-10, batch 128, SGD): the
# core's epoch loop (shuffled gather + train_step per batch + metrics), and
# fit() over 5 epochs (input checks, permutation, history), against bare
# train_step calls on pre-sliced contiguous batches. Measured before torch
# runs: its spinning worker threads would slow whatever follows.
rng = np.random.default_rng(0)
n = 128 * 60
X = rng.standard_normal((n, 784)).astype(np.float32)
y = rng.integers(0, 10, n)
y32 = y.astype(np.int32)
m1 = fm.MLP([784, 256, 256, 10], seed=0).compile(fm.optim.SGD(lr=0.01))
m2 = fm.MLP([784, 256, 256, 10], seed=0).compile(fm.optim.SGD(lr=0.01))
perm = fm.ops.permutation(n, 0, 0)
batches = [(np.ascontiguousarray(X[i:i + 128]), y32[i:i + 128]) for i in range(0, n, 128)]


def bare():
    for xb, yb in batches:
        m2._net.train_step(xb, yb, None, None)


def core_loop():
    m1._net.train_epoch(X, y32, perm, 128, 0, -1, None, None)


def fit5():
    m1.fit(X, y, epochs=5, batch_size=128, verbose=0)


def best(f, reps=7):
    f()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t0)
    return min(ts)


print(f"MNIST {E} epochs, batch {B}, {args.threads} thread(s), fastmlp isa "
      f"{fm.show_config()['isa']}")
# interleave the three so that machine noise hits them alike
tb, tc, tf = [], [], []
for _ in range(3):
    tb.append(best(bare))
    tc.append(best(core_loop))
    tf.append(best(fit5, reps=2) / 5)
b_, c_, f_ = min(tb), min(tc), min(tf)
print(f"config M, {n // 128} batches per epoch: bare train_step calls {b_ * 1e3:.1f} ms, "
      f"core epoch loop (shuffled) {c_ * 1e3:.1f} ms ({100 * (c_ / b_ - 1):+.1f}%), "
      f"fit per epoch over 5 epochs {f_ * 1e3:.1f} ms ({100 * (f_ / b_ - 1):+.1f}%)")

for seed in args.seeds:
    acc, t = run_fastmlp(seed)
    line = f"seed {seed}: fastmlp test acc {acc:.4f}, {t:.3f} s/epoch"
    if not args.no_torch:
        tacc, tt = run_torch(seed)
        line += f" | torch test acc {tacc:.4f}, {tt:.3f} s/epoch | fastmlp {tt / t:.2f}x faster"
    print(line, flush=True)
