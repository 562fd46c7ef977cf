"""XOR, the classic problem a single layer cannot learn: a 2-4-1 network can.

    python examples/xor.py
"""

import numpy as np

import fastmlp as fm
from fastmlp.datasets import make_xor

X, y = make_xor()
model = fm.MLP([2, 4, 1], activation="tanh", loss="binary_cross_entropy", dtype="float64", seed=0)
model.compile(optimizer=fm.optim.SGD(lr=0.5, momentum=0.9))
history = model.fit(X, y, epochs=300, batch_size=4, verbose=0)

print(f"loss: {history['loss'][0]:.4f} -> {history['loss'][-1]:.6f}")
for xi, p in zip(X, model.predict_proba(X)[:, 0]):
    print(f"  {int(xi[0])} xor {int(xi[1])} -> {p:.4f}  ({int(p > 0.5)})")
assert np.array_equal(model.predict(X), y)
