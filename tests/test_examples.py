"""The lessons in examples/ run and print what they claim.

Each example runs as a subprocess (as a reader would run it) and the test
reads its findings back from what it printed.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_data_dir

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
# A guard against a hung example, not a time limit. An example under the
# sanitizers runs several times slower (one took over 300 s on a loaded
# 2-core machine), so .ci/sanitize scales it.
TIMEOUT = 300 * float(os.environ.get("FASTMLP_TEST_TIMEOUT_SCALE", "1"))


def run(name, *args, cwd):
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def number(pattern, text):
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in the output:\n{text}"
    return float(m.group(1))


def check_figure(out, png):
    if HAVE_MPL:
        assert f"figure: {png}" in out
        assert png.stat().st_size > 1000
    else:
        assert "matplotlib is not installed" in out


def test_backprop_by_hand(tmp_path):
    out = run("backprop_by_hand.py", cwd=tmp_path)
    assert "prediction 0.800000, target 1.0, error a2 - t = -0.200000, loss 0.040000" in out
    assert "dL/da2 = 2 (a2 - t)    -0.400000000000" in out
    assert "da2/dz2 = a2 (1 - a2)  +0.160000000000" in out
    # core against reference, the hand chain-rule product against the core's dL/dw, the update
    assert number(r"max \|core - reference\| over every value above: (\S+)", out) <= 1e-12
    assert number(r"max \|hand chain-rule product - core dL/dw\|: (\S+)", out) <= 1e-12
    assert number(r"max \|hand update - core update\|: (\S+)", out) <= 1e-12
    # every per-layer difference printed beside the values is small too
    diffs = [float(v) for v in re.findall(r"\|core - ref\| (\S+)", out)]
    assert len(diffs) == 12
    assert max(diffs) <= 1e-12
    # 9 hidden + 4 output rows of "hand  reference  core": all three columns equal to 1e-12
    rows = re.findall(r"^  [wb][12]\S* .*?([+-]\d\.\d{12})\s+([+-]\d\.\d{12})\s+([+-]\d\.\d{12})$",
                      out, flags=re.M)
    assert len(rows) == 13
    for hand, ref, core in rows:
        assert abs(float(hand) - float(core)) <= 2e-12  # printed to 12 decimals
        assert abs(float(ref) - float(core)) <= 2e-12
    before, after = number(r"loss (\S+) -> ", out), number(r"loss \S+ -> (\S+)", out)
    assert after < before


def test_vanishing_gradients(tmp_path):
    png = tmp_path / "vg.png"
    out = run("vanishing_gradients.py", "--epochs", "12", "--png", str(png), cwd=tmp_path)

    sigmoid = _ratio(out, "sigmoid")
    relu_he = _ratio(out, "relu + He")
    bn = _ratio(out, "sigmoid + batch norm")
    clipped = _ratio(out, "relu, W x 1.3, clip_norm=5")
    assert sigmoid < 1e-6          # vanished: ~1e-12 in this setup
    assert relu_he > 1e-2
    assert bn > 1e-2
    assert relu_he / sigmoid > 1e6
    assert clipped > 1e-3
    assert re.search(r"^relu, W x 1\.3 +diverged: training diverged at epoch 1", out, re.M)
    # the exploding run's first-epoch gradients are large, clipped it still learns
    row = _row(out, "relu, W x 1.3, clip_norm=5")
    assert float(row[1]) > 10
    assert float(row[3]) < float(row[2])
    # the sigmoid net is stuck near chance, the cured ones learn
    assert float(_row(out, "sigmoid")[4]) < 0.7
    assert float(_row(out, "relu + He")[4]) > 0.85
    check_figure(out, png)


def _row(out, name):
    """(ratio, largest norm, first loss, last loss, accuracy) of one network's line."""
    m = re.search(rf"^{re.escape(name)} +(\S+) +(\S+) +(\S+) -> (\S+) +(\S+)$", out, re.M)
    assert m, f"no row for {name!r} in:\n{out}"
    return m.groups()


def _ratio(out, name):
    return float(_row(out, name)[0])


def test_optimizers(tmp_path):
    png = tmp_path / "opt.png"
    out = run("optimizers.py", "--epochs", "30", "--png", str(png), cwd=tmp_path)
    rows = dict(re.findall(r"^(SGD|Momentum|RMSProp|Adam|AdaGrad) +\S+ +(\S+)", out, re.M))
    firsts = dict(re.findall(r"^(SGD|Momentum|RMSProp|Adam|AdaGrad) +(\S+)", out, re.M))
    assert set(rows) == {"SGD", "Momentum", "RMSProp", "Adam", "AdaGrad"}
    for name in rows:
        assert float(rows[name]) < float(firsts[name]), name
    sgd = float(rows["SGD"])
    for name in ("Momentum", "Adam", "RMSProp", "AdaGrad"):
        assert float(rows[name]) < 0.5 * sgd, name
    assert "finding: after 30 epochs plain SGD" in out
    check_figure(out, png)


def test_overfitting_and_cv(tmp_path):
    pytest.importorskip("sklearn", reason="overfitting_and_cv.py uses scikit-learn's "
                        "cross_val_score and GridSearchCV")
    png = tmp_path / "ocv.png"
    out = run("overfitting_and_cv.py", "--quick", "--png", str(png), cwd=tmp_path)
    rows = {m[0]: [float(v) for v in m[1:]] for m in re.findall(
        r"^(overfit \(alpha=0\)|L2 \(alpha=10\)|dropout=0\.5|early stopping) +(\S+) +(\S+) +(\S+)",
        out, re.M)}
    assert len(rows) == 4
    over_train, over_test, gap = rows["overfit (alpha=0)"]
    assert over_train >= 0.99                       # learned the training rows by heart
    assert gap > 0.1
    assert number(r"finding: overfitting gap (\S+)", out) > 0.1
    for name, (train, test, _) in rows.items():
        assert 0 <= test <= train <= 1, name
    assert rows["L2 (alpha=10)"][1] > over_test     # L2 helps on the test set
    # cross_val_score (4 settings x 3 folds) and GridSearchCV (2 x 2 grid) scores are accuracies
    cv_rows = re.findall(r"^cv .+? (\S+) \+- \S+  \[([^\]]*)\]$", out, re.M)
    assert len(cv_rows) == 4
    scores = [float(v) for mean, folds in cv_rows for v in [mean, *folds.split()]]
    assert len(scores) == 4 * 4
    grid = [float(v) for v in re.findall(r"^  alpha=\S+ +dropout=\S+ +cv (\S+)", out, re.M)]
    assert len(grid) == 4
    best_cv = number(r"cv score (\S+), test score", out)
    for s in [*scores, *grid, best_cv]:
        assert 0 <= s <= 1
    assert best_cv == max(grid)
    best_test = number(r"cv score \S+, test score (\S+)", out)
    assert best_test > over_test + 0.02             # the CV choice beats the overfit network
    assert best_test == number(r"the cross-validated choice scores (\S+)", out)
    # the overfit network's held-out loss turns up while its training loss keeps falling
    low = number(r"held-out loss is lowest at epoch \d+ \((\S+)\)", out)
    end = number(r"held-out loss is lowest at epoch \d+ \(\S+\) and ends at (\S+)", out)
    assert end > 1.5 * low
    assert number(r"training loss falls to ([\d.]+)", out) < 0.05
    check_figure(out, png)


@pytest.mark.parametrize("name", ["vanishing_gradients.py", "optimizers.py"])
def test_without_matplotlib_the_lesson_goes_on(tmp_path, name):
    # A sitecustomize that hides matplotlib, first on the child's path.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['matplotlib'] = None\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, str(EXAMPLES / name), "--epochs", "3", "--png",
                           str(tmp_path / "x.png")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "matplotlib is not installed: no figure" in proc.stdout
    assert "finding:" in proc.stdout
    assert not (tmp_path / "x.png").exists()


def _needs_shared(sub):
    base = shared_data_dir()
    if base is None or not (base / sub).is_dir():
        pytest.skip(f"{sub} not found: set FASTMLP_DATA or put the files in ../shared/data/{sub}")
    return base / sub


def test_house_prices_meets_its_r2_bar(tmp_path):
    # The full recipe (about 5 s on one thread): the bar the example prints is met.
    folder = _needs_shared("california-housing")
    out = run("house_prices.py", "--data", str(folder), cwd=tmp_path)
    assert "16512 training and 4128 test districts, 18 features" in out
    r2 = number(r"test R\^2 (\S+) against the bar of 0\.80: met", out)
    assert r2 >= 0.80


def test_mnist_runs_and_reports_against_its_bar(tmp_path):
    # Two epochs only (the full ten reach 0.983-0.984; examples/mnist.py's
    # docstring): the example runs and prints its accuracy against the bar.
    folder = _needs_shared("mnist")
    out = run("mnist.py", "--data", str(folder), "--epochs", "2", "--threads", "1", cwd=tmp_path)
    accuracy = number(r"test accuracy (\S+) against the bar of 0\.98: (?:met|NOT met)", out)
    assert accuracy > 0.95
