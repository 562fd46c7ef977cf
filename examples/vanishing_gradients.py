"""Vanishing and exploding gradients in a 20-layer network, and their cures.

    python examples/vanishing_gradients.py [--epochs 40] [--png vanishing_gradients.png]

Backpropagation multiplies, layer by layer, by each activation's derivative
and each weight matrix. The sigmoid's derivative is at most 1/4, so through
19 sigmoid layers the gradient that reaches the first layer is many orders of
magnitude smaller than the last layer's: the first layers stop learning and
the network stays at chance. Four cures and one disease, on the same data
(a 16-feature two-class problem) and the same 16-32x19-2 shape:

    sigmoid            Glorot init: the first layers' gradients vanish
    relu + He          ReLU's derivative is 1 where active and He init keeps
                       the signal's variance: gradients reach every layer
    sigmoid + BN       batch normalization rescales each layer's gradient
    relu, W x 1.3      weights 1.3 x too large: 1.3^20 ~ 190, gradients
                       explode and plain SGD diverges in its first epoch
    ... + clip_norm=5  the same with gradient-norm clipping: it trains

The per-layer gradient norms come from the History ("grad_norm_<l>", the
mean 2-norm over each epoch's batches, before clipping).
"""

import argparse

import numpy as np

import fastmlp as fm

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=40)
parser.add_argument("--png", default="vanishing_gradients.png")
args = parser.parse_args()

rng = np.random.default_rng(0)
X = rng.normal(size=(512, 16)).astype(np.float32)
y = (X[:, :4].sum(axis=1) > 0).astype(np.int64)
SIZES = [16] + [32] * 19 + [2]                   # 20 dense layers


def train(activation, init="auto", batch_norm=False, gain=1.0, clip_norm=None, lr=0.1):
    model = fm.MLP(SIZES, activation=activation, init=init, batch_norm=batch_norm, seed=0)
    if gain != 1.0:
        for layer in model.layers:
            layer.W = layer.W * gain
    model.compile(optimizer=fm.optim.SGD(lr=lr, momentum=0.9), clip_norm=clip_norm)
    try:
        return model.fit(X, y, epochs=args.epochs, batch_size=64, verbose=0)
    except FloatingPointError as e:
        return e


runs = {
    "sigmoid": train("sigmoid"),
    "relu + He": train("relu", init="he_normal"),
    "sigmoid + batch norm": train("sigmoid", batch_norm=True),
    "relu, W x 1.3": train("relu", init="he_normal", gain=1.3, lr=0.01),
    "relu, W x 1.3, clip_norm=5": train("relu", init="he_normal", gain=1.3, lr=0.01,
                                        clip_norm=5.0),
}

print(f"20-layer networks {SIZES[0]}-32x19-{SIZES[-1]}, SGD with momentum 0.9, "
      f"{args.epochs} epochs")
print(f"{'network':<28} {'layer 0 / layer 19':>19} {'largest norm':>13} {'loss':>16} "
      f"{'accuracy':>9}")
for name, h in runs.items():
    if isinstance(h, FloatingPointError):
        print(f"{name:<28} diverged: {str(h).split(':', 2)[1].strip()}")
        continue
    g = h.grad_norms()                           # (epochs, layers)
    ratio = g[0, 0] / g[0, -1]                   # first epoch: before training changes it
    print(f"{name:<28} {ratio:19.1e} {g[0].max():13.1e} "
          f"{h['loss'][0]:7.3f} -> {h['loss'][-1]:5.3f} {h['accuracy'][-1]:9.3f}")

print()
g = runs["sigmoid"].grad_norms()[0]
print("sigmoid, epoch 1, gradient norm by layer: "
      + " ".join(f"{v:.0e}" for v in g[::3]) + f" (layers 0, 3, ..., 18); layer 19 {g[-1]:.0e}")
print("finding: with sigmoid the first layer's gradient is "
      f"{runs['sigmoid'].grad_norms()[0, 0] / runs['sigmoid'].grad_norms()[0, -1]:.0e} "
      "of the last layer's, so it does not learn; ReLU + He and batch norm keep every "
      "layer's gradient within a factor of ten or so; clipping tames the exploding run.")

try:
    import matplotlib
except ImportError:
    print("matplotlib is not installed: no figure (pip install \"fastmlp[plot]\")")
else:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 7.5))
    FigureCanvasAgg(fig)
    cmap = matplotlib.colormaps["viridis"]
    trained = [(k, h) for k, h in runs.items() if not isinstance(h, FloatingPointError)]
    for i, (name, h) in enumerate(trained):
        ax = fig.add_subplot(2, 3, i + 1)
        gn = h.grad_norms()
        for layer in range(gn.shape[1]):
            ax.plot(h.epochs, gn[:, layer], color=cmap(0.9 * layer / (gn.shape[1] - 1)), lw=1)
        ax.set_yscale("log")
        ax.set_title(f"{name}: gradient norm per layer")
        ax.set_xlabel("epoch")
        if i == 0:
            ax.text(0.98, 0.98, "layer 0 dark ... layer 19 light", transform=ax.transAxes,
                    ha="right", va="top", fontsize="small")
    ax = fig.add_subplot(2, 3, 5)
    for name, h in trained:
        ax.plot(h.epochs, h["loss"], label=name)
    ax.set_yscale("log")
    ax.set_title("training loss")
    ax.set_xlabel("epoch")
    ax.legend(fontsize="small")
    ax = fig.add_subplot(2, 3, 6)
    for name, h in trained:
        ax.plot(range(len(SIZES) - 1), h.grad_norms()[0], marker=".", label=name)
    ax.set_yscale("log")
    ax.set_title("epoch 1: gradient norm by layer")
    ax.set_xlabel("layer (0 = first)")
    ax.set_xticks(range(0, len(SIZES) - 1, 2))
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(args.png, dpi=90)
    print(f"figure: {args.png}")
