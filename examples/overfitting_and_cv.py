"""A network that overfits, then L2, dropout and early stopping, chosen by cross-validation.

    python examples/overfitting_and_cv.py [--quick] [--png overfitting_and_cv.png]

300 training rows of a noisy two-class problem (30 features, 4 of them
informative, 10% of the labels flipped) and a 1000-row test set held out from
everything. A 30-128-128-2 ReLU network (fm.MLPClassifier, Adam, 200 epochs)
has about 20,000 weights for 300 rows: it learns the training set by heart,
noise included, and its test accuracy falls well short of its training
accuracy. Three cures, each a keyword of the estimator:

    alpha=10            L2: adds 0.5 alpha ||W||^2 / batch to the loss, so
                        large weights (sharp, memorising boundaries) cost
    dropout=0.5         zeroes each hidden unit with probability 0.5 in
                        every training step: no unit can rely on another
    early_stopping=True holds out 20% of the training rows and keeps the
                        weights of the epoch with the best validation accuracy

How much of each? The test set must not decide (then its score is no longer
an estimate of new data); cross-validation on the training rows does:
cross_val_score compares the settings, GridSearchCV searches alpha x dropout
and refits the best on all 300 rows, and only then is the test set used, once.
(On 300 rows early stopping pays for its 60 validation rows: its
cross-validated score is the lowest; L2 does best here.) The figure shows the
log-loss on the training and the held-out rows, epoch by epoch, of the overfit
network and of the cross-validated choice. Requires scikit-learn.
"""

import argparse
import warnings

import numpy as np
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score, train_test_split

import fastmlp as fm

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true",
                    help="3 folds and a 2 x 2 grid instead of 5 folds and 4 x 2 (for the tests)")
parser.add_argument("--png", default="overfitting_and_cv.png")
args = parser.parse_args()

# 200 epochs at a fixed budget, not "until converged": that is the point.
warnings.simplefilter("ignore", ConvergenceWarning)

X, y = make_classification(n_samples=1300, n_features=30, n_informative=4, n_redundant=0,
                           flip_y=0.1, random_state=0)
X_train, X_test, y_train, y_test = train_test_split(X, y, train_size=300, stratify=y,
                                                    random_state=0)
EPOCHS = 200
# tol=0 with n_iter_no_change=EPOCHS: the training-loss stopping rule never fires,
# every network without early stopping trains all 200 epochs.
big = dict(hidden_layer_sizes=(128, 128), max_iter=EPOCHS, tol=0.0, n_iter_no_change=EPOCHS,
           random_state=0)
settings = {
    "overfit (alpha=0)": dict(alpha=0.0),
    "L2 (alpha=10)": dict(alpha=10.0),
    "dropout=0.5": dict(alpha=0.0, dropout=0.5),
    "early stopping": dict(alpha=0.0, early_stopping=True, validation_fraction=0.2,
                           n_iter_no_change=20),
}

print(f"{len(y_train)} training rows, {len(y_test)} test rows, 30 features (4 informative), "
      f"10% labels flipped; 30-128-128-2 ReLU, Adam, {EPOCHS} epochs, random_state=0")
print(f"{'setting':<18} {'train acc':>9} {'test acc':>9} {'gap':>6} {'epochs':>7}")
fitted = {}
for name, kw in settings.items():
    est = fm.MLPClassifier(**{**big, **kw}).fit(X_train, y_train)
    fitted[name] = est
    tr, te = est.score(X_train, y_train), est.score(X_test, y_test)
    print(f"{name:<18} {tr:9.3f} {te:9.3f} {tr - te:6.3f} {est.n_iter_:7d}")
over = fitted["overfit (alpha=0)"]
over_train, over_test = over.score(X_train, y_train), over.score(X_test, y_test)
print(f"finding: overfitting gap {over_train - over_test:.3f} (train {over_train:.3f}, "
      f"test {over_test:.3f})")

# Cross-validation: the same folds for every setting, only the training rows.
folds = 3 if args.quick else 5
cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
print(f"\n{folds}-fold cross-validation accuracy on the training rows (cross_val_score)")
for name, kw in settings.items():
    scores = cross_val_score(fm.MLPClassifier(**{**big, **kw}), X_train, y_train, cv=cv)
    print(f"cv {name:<18} {scores.mean():.3f} +- {scores.std():.3f}  "
          f"[{' '.join(f'{s:.3f}' for s in scores)}]")

grid = {"alpha": [0.0, 10.0], "dropout": [0.0, 0.5]} if args.quick else \
    {"alpha": [0.0, 1.0, 10.0, 30.0], "dropout": [0.0, 0.5]}
search = GridSearchCV(fm.MLPClassifier(**big), grid, cv=cv, n_jobs=1).fit(X_train, y_train)
print(f"\nGridSearchCV over alpha {grid['alpha']} x dropout {grid['dropout']}, "
      f"{folds} folds ({len(search.cv_results_['params'])} settings)")
for params, mean, std in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"],
                             search.cv_results_["std_test_score"]):
    print(f"  alpha={params['alpha']:<5g} dropout={params['dropout']:<4g} cv {mean:.3f} "
          f"+- {std:.3f}")
best = search.best_estimator_                    # refit on all 300 training rows
best_test = best.score(X_test, y_test)
print(f"best: alpha={search.best_params_['alpha']:g} dropout={search.best_params_['dropout']:g}, "
      f"cv score {search.best_score_:.3f}, test score {best_test:.3f}")
print(f"finding: the cross-validated choice scores {best_test:.3f} on the test set against "
      f"{over_test:.3f} for the overfit network ({best_test - over_test:+.3f})")

# The curves: the same two settings trained one epoch at a time (partial_fit),
# the log-loss on the training rows and on the held-out rows after each epoch.
curves = {}
for name, kw in (("overfit (alpha=0)", settings["overfit (alpha=0)"]),
                 ("best by CV", search.best_params_)):
    est = fm.MLPClassifier(**{**big, **kw, "random_state": np.random.RandomState(0)})
    train_loss, val_loss = [], []
    for _ in range(EPOCHS):
        est.partial_fit(X_train, y_train, classes=[0, 1])
        train_loss.append(log_loss(y_train, est.predict_proba(X_train)))
        val_loss.append(log_loss(y_test, est.predict_proba(X_test)))
    curves[name] = (train_loss, val_loss)
tl, vl = curves["overfit (alpha=0)"]
low = int(np.argmin(vl))
print(f"finding: the overfit network's held-out loss is lowest at epoch {low + 1} ({vl[low]:.3f}) "
      f"and ends at {vl[-1]:.3f} while its training loss falls to {tl[-1]:.4f}; the CV "
      f"choice ends at held-out loss {curves['best by CV'][1][-1]:.3f}")

try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
except ImportError:
    print("matplotlib is not installed: no figure (pip install \"fastmlp[plot]\")")
else:
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    epochs = np.arange(1, EPOCHS + 1)
    first = None
    for i, (name, (train_loss, val_loss)) in enumerate(curves.items()):
        ax = fig.add_subplot(1, 2, i + 1, sharey=first)
        first = first or ax
        ax.plot(epochs, train_loss, label="training rows")
        ax.plot(epochs, val_loss, label="held-out rows")
        ax.set_yscale("log")
        ax.set_title(f"{name}: log-loss")
        ax.set_xlabel("epoch")
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.png, dpi=90)
    print(f"figure: {args.png}")
