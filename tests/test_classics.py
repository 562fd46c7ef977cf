"""The classic problems: XOR, and scikit-learn's bundled digits."""

from __future__ import annotations

import numpy as np
import pytest

import fastmlp as fm
from fastmlp.datasets import make_xor


def test_xor_learned_by_2_4_1_for_at_least_9_of_10_seeds():
    X, y = make_xor()
    solved = 0
    for seed in range(10):
        model = fm.MLP([2, 4, 1], activation="tanh", loss="binary_cross_entropy",
                       dtype="float64", seed=seed)
        model.compile(optimizer=fm.optim.SGD(lr=0.5, momentum=0.9))
        model.fit(X, y, epochs=300, batch_size=4, verbose=0)
        solved += bool(np.array_equal(model.predict(X), y))
    assert solved >= 9, f"XOR solved for {solved} of 10 seeds"


@pytest.mark.parametrize("seed", [0, 1])
def test_digits_held_out_accuracy(seed):
    datasets = pytest.importorskip("sklearn.datasets")
    model_selection = pytest.importorskip("sklearn.model_selection")
    digits = datasets.load_digits()
    X = digits.data / 16.0
    Xtr, Xte, ytr, yte = model_selection.train_test_split(
        X, digits.target, test_size=0.25, stratify=digits.target, random_state=0)
    model = fm.MLP([64, 128, 10], activation="relu", loss="cross_entropy", seed=seed)
    model.compile(optimizer=fm.optim.SGD(lr=0.05, momentum=0.9))
    history = model.fit(Xtr, ytr, epochs=40, batch_size=32, verbose=0)
    assert history["loss"][-1] < history["loss"][0] / 10
    accuracy = model.score(Xte, yte)
    assert accuracy >= 0.97, f"held-out accuracy {accuracy:.4f}"
    assert accuracy == pytest.approx(np.mean(model.predict(Xte) == yte))
