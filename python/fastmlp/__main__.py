"""python -m fastmlp: train a real network on a built-in problem and show what it learned.

The default problem is three interleaved spirals in the plane, which no
linear model can separate. A 2-64-64-3 ReLU network learns it with
mini-batch SGD and momentum; the demo prints the training curve, the held-out
accuracy and a map of the plane coloured by the class the network predicts.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import fastmlp as fm
from fastmlp.datasets import make_spirals

GLYPHS = "ox+*#@"


def decision_map(model, X, y, width=64, height=28):
    lo, hi = X.min(axis=0) - 0.1, X.max(axis=0) + 0.1
    xs = np.linspace(lo[0], hi[0], width)
    ys = np.linspace(hi[1], lo[1], height)
    grid = np.array([[x, yy] for yy in ys for x in xs])
    pred = model.predict(grid).reshape(height, width)
    canvas = [[" .:-=~"[c % 6] for c in row] for row in pred]
    # Overlay a sample of the training points with the glyph of their class.
    for (px, py), c in zip(X[::4], y[::4]):
        col = int(round((px - lo[0]) / (hi[0] - lo[0]) * (width - 1)))
        row = int(round((hi[1] - py) / (hi[1] - lo[1]) * (height - 1)))
        canvas[row][col] = GLYPHS[c % len(GLYPHS)]
    return "\n".join("  |" + "".join(r) + "|" for r in canvas)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastmlp", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-map", action="store_true", help="skip the decision map")
    args = parser.parse_args(argv)
    if args.threads is not None:
        fm.set_num_threads(args.threads)

    cfg = fm.show_config()
    print(f"fastmlp {cfg['version']}  ({cfg['compiler']}, kernel {cfg['isa']}, "
          f"OpenMP {'on' if cfg['openmp'] else 'off'}, {cfg['num_threads']} threads)")

    X, y = make_spirals(n_per_class=400, n_classes=3, seed=args.seed)
    n_test = len(y) // 4
    Xtr, ytr, Xte, yte = X[n_test:], y[n_test:], X[:n_test], y[:n_test]
    print(f"data: 3 interleaved spirals, {len(ytr)} training and {len(yte)} held-out points in 2-D")

    model = fm.MLP([2, 64, 64, 3], activation="relu", loss="cross_entropy", seed=args.seed)
    model.compile(optimizer=fm.optim.SGD(lr=args.lr, momentum=0.9))
    print(f"model: {model}, {model.n_params} parameters, SGD(lr={args.lr}, momentum=0.9)")
    print(f"before training: held-out accuracy {model.score(Xte, yte):.3f} (chance is 0.333)")

    t0 = time.perf_counter()
    hist = model.fit(Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
                     validation_data=(Xte, yte), verbose=0)
    secs = time.perf_counter() - t0
    step = max(1, args.epochs // 6)
    for e in list(range(0, args.epochs, step)) + [args.epochs - 1]:
        print(f"  epoch {e + 1:4d}  loss {hist['loss'][e]:.4f}  "
              f"held-out accuracy {hist['val_accuracy'][e]:.3f}")
    steps = args.epochs * -(-len(ytr) // args.batch_size)
    print(f"trained {args.epochs} epochs ({steps} SGD steps) in {secs:.2f} s "
          f"({1e6 * secs / steps:.1f} us per step)")
    acc = model.score(Xte, yte)
    print(f"after training: held-out accuracy {acc:.3f}, training loss {hist['loss'][-1]:.4f}")
    if not args.no_map:
        print("what it learned: the plane coloured by predicted class "
              "(' ', '.', ':'), with training points (o, x, +):")
        print(decision_map(model, Xtr, ytr))
    return 0 if acc > 0.9 else 1


if __name__ == "__main__":
    raise SystemExit(main())
