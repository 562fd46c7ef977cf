"""House-price regression on the California housing data (1990 census).

    python examples/house_prices.py [--data PATH_TO_FOLDER_WITH_housing.csv]

Looks for the file in --data, $FASTMLP_DATA/california-housing or
../shared/data/california-housing beside the repository.
"""

import argparse
import os
from pathlib import Path

import numpy as np

import fastmlp as fm
from fastmlp.datasets import load_california_housing

parser = argparse.ArgumentParser()
parser.add_argument("--data", default=None)
parser.add_argument("--epochs", type=int, default=60)
args = parser.parse_args()
path = args.data
if path is None and not os.environ.get("FASTMLP_DATA"):
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "california-housing"

X, y, names = load_california_housing(path)
# Counts (rooms, bedrooms, population, households) are heavy-tailed: log them.
for i, name in enumerate(names):
    if name in ("total_rooms", "total_bedrooms", "population", "households"):
        X[:, i] = np.log1p(X[:, i])
rng = np.random.default_rng(0)
order = rng.permutation(len(y))
n_test = len(y) // 5
test, train = order[:n_test], order[n_test:]
mu, sd = X[train].mean(axis=0), X[train].std(axis=0) + 1e-12
Xs = (X - mu) / sd
y_scale = 100_000.0  # train on prices in units of $100k

model = fm.MLP([X.shape[1], 64, 64, 1], activation="relu", loss="mse", seed=0)
model.compile(optimizer=fm.optim.SGD(lr=0.002, momentum=0.9))
model.fit(Xs[train], y[train] / y_scale, epochs=args.epochs, batch_size=64, verbose=0,
          validation_split=0.1)
pred = model.predict(Xs[test]) * y_scale
rmse = float(np.sqrt(np.mean((pred - y[test]) ** 2)))
baseline = float(np.sqrt(np.mean((y[train].mean() - y[test]) ** 2)))
print(f"{len(train)} training and {n_test} test districts, {X.shape[1]} features")
print(f"test RMSE ${rmse:,.0f} (predicting the mean: ${baseline:,.0f}); "
      f"R^2 {model.score(Xs[test], y[test] / y_scale):.3f}")
