"""fm.plot_history / History.plot: the figure holds the History's own numbers."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest

import fastmlp as fm

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def history():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 5))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    model = fm.MLP([5, 16, 16, 2], activation="relu", loss="cross_entropy", dtype="float64",
                   seed=0)
    model.compile(optimizer=fm.optim.SGD(lr=0.1, momentum=0.9),
                  lr_schedule=fm.optim.StepLR(step_size=2, gamma=0.5))
    return model.fit(X, y, epochs=6, batch_size=32, validation_split=0.25, verbose=0)


def _axis(fig, title):
    found = [ax for ax in fig.axes if ax.get_title() == title]
    titles = [a.get_title() for a in fig.axes]
    assert len(found) == 1, f"no single axis titled {title!r} in {titles}"
    return found[0]


def _lines(ax):
    return {line.get_label(): line for line in ax.lines}


def test_png_written(history, tmp_path):
    path = tmp_path / "h.png"
    fig = fm.plot_history(history, path)
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert type(fig).__name__ == "Figure"
    # str paths too, and History.plot delegates
    fig2 = history.plot(str(tmp_path / "h2.png"), title="run")
    assert (tmp_path / "h2.png").stat().st_size > 1000
    assert fig2._suptitle.get_text() == "run"


def test_axes_hold_the_history(history, tmp_path):
    fig = fm.plot_history(history, tmp_path / "h.png")
    assert [ax.get_title() for ax in fig.axes] == [
        "loss", "accuracy", "learning rate", "gradient norm per layer"]
    epochs = np.array(history.epochs, dtype=float)

    loss = _lines(_axis(fig, "loss"))
    assert set(loss) == {"train", "validation"}
    np.testing.assert_array_equal(loss["train"].get_ydata(), history["loss"])
    np.testing.assert_array_equal(loss["validation"].get_ydata(), history["val_loss"])
    np.testing.assert_array_equal(loss["train"].get_xdata(), epochs)

    acc = _lines(_axis(fig, "accuracy"))
    np.testing.assert_array_equal(acc["train"].get_ydata(), history["accuracy"])
    np.testing.assert_array_equal(acc["validation"].get_ydata(), history["val_accuracy"])

    lr_ax = _axis(fig, "learning rate")
    np.testing.assert_array_equal(lr_ax.lines[0].get_ydata(), history["lr"])
    np.testing.assert_array_equal(lr_ax.lines[0].get_ydata(), [0.1, 0.1, 0.05, 0.05, 0.025, 0.025])

    g_ax = _axis(fig, "gradient norm per layer")
    assert g_ax.get_yscale() == "log"
    assert len(g_ax.lines) == 3
    for i, line in enumerate(g_ax.lines):
        assert line.get_label() == f"layer {i}"
        np.testing.assert_array_equal(line.get_ydata(), history[f"grad_norm_{i}"])
    np.testing.assert_array_equal(np.array([ln.get_ydata() for ln in g_ax.lines]).T,
                                  history.grad_norms())


def test_without_path_returns_pyplot_figure(history):
    import matplotlib.pyplot as plt

    fig = history.plot()
    try:
        assert plt.fignum_exists(fig.number)
        assert len(fig.axes) == 4
    finally:
        plt.close(fig)


def test_regression_history_has_no_accuracy_panel(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 3))
    y = X.sum(axis=1)
    model = fm.MLP([3, 8, 1], activation="tanh", loss="mse", dtype="float64", seed=0)
    h = model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    fig = fm.plot_history(h, tmp_path / "r.png")
    assert [ax.get_title() for ax in fig.axes] == [
        "loss", "learning rate", "gradient norm per layer"]
    assert set(_lines(_axis(fig, "loss"))) == {"train"}


def test_estimator_like_objects(history, tmp_path):
    # an object holding a History in history_ (the fastmlp estimators)
    fig = fm.plot_history(SimpleNamespace(history_=history), tmp_path / "a.png")
    np.testing.assert_array_equal(_axis(fig, "loss").lines[0].get_ydata(), history["loss"])
    # scikit-learn's MLPClassifier attributes
    est = SimpleNamespace(loss_curve_=[0.9, 0.5, 0.4], validation_scores_=[0.6, 0.7, 0.75])
    fig = fm.plot_history(est, tmp_path / "b.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "validation score"]
    np.testing.assert_array_equal(_axis(fig, "loss").lines[0].get_ydata(), est.loss_curve_)
    np.testing.assert_array_equal(_axis(fig, "validation score").lines[0].get_ydata(),
                                  est.validation_scores_)
    np.testing.assert_array_equal(_axis(fig, "loss").lines[0].get_xdata(), [1, 2, 3])
    # without validation scores (sklearn without early stopping: None)
    fig = fm.plot_history(SimpleNamespace(loss_curve_=[1.0, 0.5], validation_scores_=None),
                          tmp_path / "c.png")
    assert [ax.get_title() for ax in fig.axes] == ["loss"]


def test_real_sklearn_estimator(tmp_path):
    sklearn_nn = pytest.importorskip("sklearn.neural_network")
    import warnings

    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] > 0).astype(int)
    est = sklearn_nn.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, early_stopping=True,
                                   random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning after 5 iterations
        est.fit(X, y)
    fig = fm.plot_history(est, tmp_path / "s.png")
    np.testing.assert_array_equal(_axis(fig, "loss").lines[0].get_ydata(), est.loss_curve_)
    np.testing.assert_array_equal(_axis(fig, "validation score").lines[0].get_ydata(),
                                  est.validation_scores_)


def test_bad_arguments(history, tmp_path):
    with pytest.raises(TypeError, match="history: expected"):
        fm.plot_history([0.5, 0.4])
    with pytest.raises(TypeError, match="history: this fm.MLP has no training record yet"):
        fm.plot_history(fm.MLP([2, 3, 1], loss="mse"))
    with pytest.raises(TypeError, match="path: expected"):
        fm.plot_history(history, 3)
    with pytest.raises(TypeError, match="path: expected"):
        history.plot(path=["a.png"])
    with pytest.raises(TypeError, match="title: expected"):
        fm.plot_history(history, tmp_path / "x.png", title=5)
    with pytest.raises(TypeError, match="figsize: expected"):
        fm.plot_history(history, tmp_path / "x.png", figsize=(5,))
    with pytest.raises(ValueError, match="history: no epochs"):
        fm.plot_history(fm.History())
    assert not (tmp_path / "x.png").exists()


def test_missing_matplotlib_names_the_extra(history, monkeypatch):
    # None in sys.modules makes `import matplotlib` raise ImportError
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r'pip install "fastmlp\[plot\]"'):
        history.plot()


def test_a_fitted_model_plots_its_last_history(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 3))
    y = X.sum(axis=1, keepdims=True)
    model = fm.MLP([3, 8, 1], activation="tanh", loss="mse", dtype="float64", seed=0)
    h = model.fit(X, y, epochs=4, batch_size=10, verbose=0)
    assert model.history is h
    fig = fm.plot_history(model, tmp_path / "m.png")
    np.testing.assert_array_equal(_axis(fig, "loss").lines[0].get_ydata(), h["loss"])
    assert (tmp_path / "m.png").stat().st_size > 0
