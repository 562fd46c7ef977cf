"""Five optimizers on one problem: SGD, Momentum, RMSProp, Adam, AdaGrad.

    python examples/optimizers.py [--epochs 60] [--png optimizers.png]

The same 2-64-64-3 ReLU network, the same initial weights (seed 0), the same
mini-batches (batch 32, the same shuffles) on three interleaved spirals;
only the update rule differs (torch.optim's rules and, except for the
learning rates below, its defaults):

    SGD       p -= lr g                                  lr 0.05
    Momentum  v = 0.9 v + g;  p -= lr v                  lr 0.05
    RMSProp   s = 0.99 s + 0.01 g^2;  p -= lr g / sqrt(s)  lr 3e-3
    Adam      momentum of g and RMSProp's scale, both bias-corrected  lr 3e-3
    AdaGrad   s += g^2;  p -= lr g / sqrt(s)             lr 0.05

Plain SGD at the learning rate that momentum uses crawls through the flat,
curved valleys of this loss; momentum accumulates speed along them, and the
adaptive methods give each parameter its own step size.
"""

import argparse

import numpy as np

import fastmlp as fm
from fastmlp.datasets import make_spirals

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=60)
parser.add_argument("--png", default="optimizers.png")
args = parser.parse_args()

X, y = make_spirals(n_per_class=200, seed=0)
optimizers = {
    "SGD": fm.optim.SGD(lr=0.05),
    "Momentum": fm.optim.SGD(lr=0.05, momentum=0.9),
    "RMSProp": fm.optim.RMSprop(lr=3e-3),
    "Adam": fm.optim.Adam(lr=3e-3),
    "AdaGrad": fm.optim.Adagrad(lr=0.05),
}
histories = {}
for name, opt in optimizers.items():
    model = fm.MLP([2, 64, 64, 3], activation="relu", loss="cross_entropy", seed=0)
    model.compile(optimizer=opt)
    histories[name] = model.fit(X, y, epochs=args.epochs, batch_size=32, verbose=0)

print(f"three spirals, {len(y)} points, 2-64-64-3 ReLU, batch 32, {args.epochs} epochs, "
      "same seed for all")
print(f"{'optimizer':<10} {'first loss':>10} {'final loss':>11} {'accuracy':>9} "
      f"{'epochs to loss < 0.1':>21}")
for name, h in histories.items():
    below = [e for e, v in zip(h.epochs, h["loss"]) if v < 0.1]
    reach = str(below[0]) if below else "never"
    print(f"{name:<10} {h['loss'][0]:10.4f} {h['loss'][-1]:11.4f} {h['accuracy'][-1]:9.3f} "
          f"{reach:>21}")
sgd = histories["SGD"]["loss"][-1]
best = min(histories, key=lambda k: histories[k]["loss"][-1])
print(f"finding: after {args.epochs} epochs plain SGD is at loss {sgd:.3f}; Momentum is "
      f"{sgd / histories['Momentum']['loss'][-1]:.0f}x lower and Adam "
      f"{sgd / histories['Adam']['loss'][-1]:.0f}x lower (lowest: {best})")

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError:
    print("matplotlib is not installed: no figure (pip install \"fastmlp[plot]\")")
else:
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    ax_loss, ax_acc = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, h in histories.items():
        ax_loss.plot(h.epochs, h["loss"], label=name)
        ax_acc.plot(h.epochs, h["accuracy"], label=name)
    ax_loss.set_yscale("log")
    ax_loss.set_title("training loss (log scale)")
    ax_acc.set_title("training accuracy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.png, dpi=90)
    print(f"figure: {args.png}")
