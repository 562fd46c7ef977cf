"""scikit-learn estimators on top of fm.MLP: MLPClassifier and MLPRegressor.

Drop-in replacements for sklearn.neural_network's estimators of the same
names (sklearn 1.6+): the same constructor names and defaults, the same fitted
attributes and the same objective, trained by fastmlp's core. This module
imports scikit-learn (an optional dependency); ``fastmlp`` exposes the classes
lazily, so ``import fastmlp`` works without it.

The objective is sklearn's. sklearn minimises, per batch B,

    S = c * L_fm + 0.5 * alpha * sum ||W||^2 / |B|

where L_fm is fastmlp's mean loss and c its scale relative to sklearn's loss
(0.5 for squared_error, whose sklearn form is half the MSE; 1 for softmax
cross-entropy; k for k logistic outputs, whose sklearn form sums over outputs
where torch's BCE averages). fastmlp minimises F = L_fm + l2 * sum ||W||^2,
so l2 = alpha / (2 c |B|) gives S = c F: the same minimiser and, with SGD's
learning rate multiplied by c (Adam's epsilon divided by c), the same steps.
loss_ and loss_curve_ are reported in sklearn's scale (c F). One difference
for stochastic solvers: fastmlp's penalty coefficient is fixed per fit, so a
last, smaller batch uses |B| = batch_size where sklearn uses its row count.
Sample weights are rescaled to mean 1 (sklearn divides weighted losses by
the weights' sum, fastmlp by the row count).
"""

from __future__ import annotations

import copy
import warnings
from numbers import Integral, Real
from typing import TYPE_CHECKING

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

try:  # scikit-learn >= 1.9: estimators take sklearn.callback callbacks
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:  # older scikit-learn: no callback API, nothing to support
    CallbackSupportMixin = None

    def with_callbacks(method):
        return method

from . import _core, _enums, distributed
from ._validation import dense_rows, is_sparse
from . import optim as _optim
from .model import MLP

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["MLPClassifier", "MLPRegressor", "expected_failed_checks"]

_ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_STOCHASTIC = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
# scipy.sparse X: validated as CSR (CSC when given, converted by the model),
# then densified a block of whole batches at a time inside fit.
_SPARSE = ("csr", "csc")


def expected_failed_checks(estimator: BaseEstimator) -> dict[str, str]:
    """The scikit-learn checks fastmlp's estimators are known not to pass.

    For ``parametrize_with_checks(..., expected_failed_checks=...)`` and
    ``check_estimator``.

    Parameters
    ----------
    estimator : MLPClassifier or MLPRegressor
        The instance the checks run on.

    Returns
    -------
    dict of str to str
        {check name: why it fails}.
    """
    failed = {}
    if isinstance(estimator, _Base) and estimator.dtype is not None and (
            estimator.dtype == "mixed_bfloat16" or np.dtype(estimator.dtype) == np.float32):
        why = (
            "float32 training: integer weights and the repeated rows they stand for give the "
            "same objective, but float32 sums in another order differ in the last bits, and "
            "after a hundred optimizer steps the predictions differ by ~1e-5 relative, above "
            "the check's rtol=1e-7 (with dtype=None or 'float64' it passes). Whether a given "
            "problem stays inside the tolerance is luck: may fail, may pass.")
        failed["check_sample_weight_equivalence_on_dense_data"] = why
        failed["check_sample_weight_equivalence_on_sparse_data"] = (
            why + " Sparse X is trained on as the same rows densified, so the same holds.")
    return failed


class _Hooks:
    """sklearn.callback's hooks around one fit (no-ops where the installed
    scikit-learn has no callback API): the fit is the root task, each epoch
    (each L-BFGS iteration) a subtask; a callback's on_fit_task_end returning
    True stops the fit after that subtask, as early stopping would. The
    fitted_estimator a callback may ask for is a copy of the estimator with
    its own copy of the network as it is at that point (made only when some
    callback asks for it)."""

    def __init__(self, est, max_subtasks, X, y, sample_weight):
        self.est = est
        self.ctx = None
        self.sub = None
        if not hasattr(est, "_init_callback_context"):
            return
        if not getattr(est, "_skl_callbacks", None) and not hasattr(est, "_parent_callback_ctx"):
            return  # nobody listens and no meta-estimator's task tree to join
        self.ctx = est._init_callback_context(max_subtasks=max_subtasks)
        self.kw = {"estimator": est, "X": X, "y": y,
                   "metadata": {} if sample_weight is None else {"sample_weight": sample_weight}}
        self.ctx.call_on_fit_task_begin(**self.kw)

    def begin(self, name):
        if self.ctx is not None:
            self.sub = self.ctx.subcontext(task_name=name)
            self.sub.call_on_fit_task_begin(**self.kw)

    def end(self, params=None):
        """Ends the running subtask; True: a callback asks to stop."""
        if self.sub is None:
            return False
        sub, self.sub = self.sub, None
        return bool(sub.call_on_fit_task_end(
            **self.kw, reconstruction_attributes=lambda: self.est._as_fitted(params)))

    def finish(self):
        if self.ctx is not None:
            if self.sub is not None:  # a subtask that did not run (L-BFGS's last)
                self.sub.call_on_fit_task_end(estimator=self.est)
                self.sub = None
            self.ctx.call_on_fit_task_end(**self.kw, reconstruction_attributes={})


class _Base(*(() if CallbackSupportMixin is None else (CallbackSupportMixin,)), BaseEstimator):
    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(_ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", *_STOCHASTIC})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "l1": [Interval(Real, 0, None, closed="left")],
        "clip_norm": [Interval(Real, 0, None, closed="neither"), None],
        "lr_schedule": [_optim.LRSchedule, None],
        "dtype": [StrOptions({"float32", "float64", "mixed_bfloat16"}), None],
        "n_threads": [Interval(Integral, 1, None, closed="left"), None],
        "comm": "no_validation",  # checked by fastmlp.distributed at fit
        "reduction": "no_validation",
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, batch_norm=False, l1=0.0, clip_norm=None, lr_schedule=None,
                 dtype=None, n_threads=None, comm=None, reduction="reproducible"):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.l1 = l1
        self.clip_norm = clip_norm
        self.lr_schedule = lr_schedule
        self.dtype = dtype
        self.n_threads = n_threads
        self.comm = comm
        self.reduction = reduction

    # -- helpers ------------------------------------------------------------
    def _compute_dtype(self, X=None):
        """The model's dtype policy: `dtype` when given; None follows sklearn,
        whose MLP computes in X's dtype after validation (float32 stays
        float32, everything else becomes float64). float32 X (or
        dtype="float32") takes fastmlp's fast path; "mixed_bfloat16" is
        passed on as it is (float32 storage, bf16 GEMM operands)."""
        if self.dtype == "mixed_bfloat16":
            return "mixed_bfloat16"
        if self.dtype is not None:
            return np.dtype(self.dtype)
        if X is not None and X.dtype == np.float32:
            return np.dtype(np.float32)
        return np.dtype(np.float64)

    def _hidden(self):
        h = self.hidden_layer_sizes
        h = list(h) if hasattr(h, "__iter__") else [h]
        if np.any(np.array(h) <= 0):
            raise ValueError(f"hidden_layer_sizes must be > 0, got {h}.")
        return [int(v) for v in h]

    def _scale(self):
        """c: sklearn's loss / fastmlp's loss (see the module docstring)."""
        if self._fm_loss == "mse":
            return 0.5
        if self._fm_loss == "cross_entropy":
            return 1.0
        return float(self.n_outputs_)

    def _refresh_views(self):
        """coefs_ (fan_in, fan_out) and intercepts_: views of the model's
        parameters, so they always show (and edit) the weights predict uses."""
        layers = self._model.layers
        self.coefs_ = [layer.W.T for layer in layers]
        self.intercepts_ = [layer.b for layer in layers]

    def _as_fitted(self, params=None):
        """Attributes that make a (shallow) copy of this estimator predict
        as the network is now, or with flat parameters `params`, independent
        of the training that goes on (sklearn.callback's fitted_estimator)."""
        model = copy.deepcopy(self._model)
        if params is not None:
            model._net.params_flat()[...] = params
        layers = model.layers
        attrs = {"_model": model, "coefs_": [layer.W.T for layer in layers],
                 "intercepts_": [layer.b for layer in layers], "n_iter_": self.n_iter_}
        if hasattr(self, "loss_"):
            attrs["loss_"] = self.loss_
        return attrs

    def __getstate__(self):
        state = super().__getstate__()
        state = dict(state)
        state.pop("coefs_", None)
        state.pop("intercepts_", None)
        # An MPI communicator belongs to its processes and does not pickle
        # (nor would it mean anything elsewhere): a copy has comm=None.
        if state.get("comm") is not None:
            state["comm"] = None
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if getattr(self, "_model", None) is not None:
            self._refresh_views()

    def _optimizer(self, c):
        lr = float(self.learning_rate_init)
        if self.solver == "sgd":
            return _optim.SGD(lr=lr * c, momentum=float(self.momentum),
                              nesterov=bool(self.nesterovs_momentum and self.momentum > 0))
        betas = (float(self.beta_1), float(self.beta_2))
        if self.solver == "adam":
            return _optim.Adam(lr=lr, betas=betas, eps=float(self.epsilon) / c)
        if self.solver == "adamw":
            return _optim.AdamW(lr=lr, betas=betas, eps=float(self.epsilon) / c)
        if self.solver == "rmsprop":
            return _optim.RMSprop(lr=lr, eps=float(self.epsilon) / c)
        if self.solver == "adagrad":
            return _optim.Adagrad(lr=lr)
        return _optim.SGD(lr=1.0)  # lbfgs drives the parameters itself

    def _compile(self, c, rows):
        """Optimizer (fresh state) and penalties for batches of `rows` rows."""
        l2 = float(self.alpha) / (2.0 * c * rows)
        sched = self.lr_schedule if self.learning_rate == "constant" else None
        self._model.compile(optimizer=self._optimizer(c), l1=float(self.l1), l2=l2,
                            clip_norm=self.clip_norm, lr_schedule=sched)

    def _new_model(self, X, seed):
        n_features = X.shape[1]
        sizes = [n_features, *self._hidden(), self.n_outputs_]
        self._model = MLP(sizes, activation=_ACTIVATIONS[self.activation], loss=self._fm_loss,
                          init="glorot_uniform", dtype=self._compute_dtype(X),
                          dropout=float(self.dropout), batch_norm=bool(self.batch_norm),
                          seed=seed)
        self.n_layers_ = len(sizes)
        self.n_iter_ = 0
        self.t_ = 0
        self._compiled = False
        self._refresh_views()

    def _output(self, X):
        """Network output for already validated X (sparse: a block of rows
        at a time), in the model's dtype."""
        return self._model.forward(X)

    def _check_X_predict(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=(np.float64, np.float32), accept_sparse=_SPARSE,
                             reset=False)

    # -- fitting ------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False, X_val=None, y_val=None):
        self._validate_params()
        hidden = self._hidden()
        if self.solver == "lbfgs" and (self.dropout or X_val is not None):
            raise ValueError("solver='lbfgs' trains full-batch and deterministically: it takes "
                             "neither dropout nor a validation set (X_val)")
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val: give both or neither")
        first = not hasattr(self, "_model") or (not self.warm_start and not incremental)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        # labels: y as the user gave it (validated), y: as the network trains on it.
        X, y, labels = self._validate_input(X, y, incremental, reset=first)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        sample_weight = self._with_class_weight(labels, sample_weight)
        if y.ndim == 1:
            y = y.reshape(-1, 1)
        rng = check_random_state(self.random_state)
        if self.comm is not None:
            if self.solver == "lbfgs":
                raise ValueError("comm: solver='lbfgs' trains full-batch in one process; use "
                                 "solver='adam' or 'sgd' for data-parallel training")
            # Every rank draws from rank 0's random state (random_state=None
            # would give each rank its own network): the generator itself is
            # sent, so comm=COMM_SELF draws what comm=None draws.
            comm = distributed.check_comm(self.comm)
            rng = comm.bcast(rng if comm.Get_rank() == 0 else None, root=0)
        if first:
            self.n_outputs_ = y.shape[1]
            self._set_output(y)
            self._new_model(X, int(rng.randint(np.iinfo(np.int32).max)))
        elif y.shape[1] != self.n_outputs_ or self._model.sizes[1:-1] != hidden:
            raise ValueError(
                f"warm_start / partial_fit: the network has {self._model.sizes[1:-1]} hidden "
                f"units and {self.n_outputs_} outputs; got hidden_layer_sizes={hidden} and y "
                f"with {y.shape[1]} outputs")
        # The callbacks see X and y as given (the classifier's labels, not
        # their binarized form), before any validation split.
        subtasks = 1 if incremental else max(int(self.max_iter), 1)
        hooks = _Hooks(self, subtasks + (self.solver == "lbfgs"), X, labels, sample_weight)
        old_threads = _core.get_num_threads()
        if self.n_threads is not None:
            _core.set_num_threads(int(self.n_threads))
        try:
            # The whole solver loop claims the network (MLP.fit does the same):
            # another thread's training of it is refused, not interleaved.
            with self._model._net.training("fit"):
                if self.solver == "lbfgs":
                    self._fit_lbfgs(X, y, sample_weight, hooks)
                else:
                    self._fit_stochastic(X, y, sample_weight, incremental, rng, X_val, y_val,
                                         first, hooks)
        finally:
            _core.set_num_threads(old_threads)
        hooks.finish()
        return self

    def _with_class_weight(self, labels, sample_weight):
        return sample_weight

    def _fm_targets(self, y):
        """y (n, outputs) as the core takes it for this estimator's loss."""
        dtype = self._model.dtype
        if self._fm_loss == "cross_entropy":
            return np.ascontiguousarray(np.argmax(y, axis=1), dtype=np.int64)
        return np.ascontiguousarray(y, dtype=dtype)

    @staticmethod
    def _normalized(sw, dtype):
        if sw is None:
            return None
        total = float(np.sum(sw))
        sw = sw * (sw.shape[0] / total) if total > 0 else sw
        return np.ascontiguousarray(sw, dtype=dtype)

    def _fit_lbfgs(self, X, y, sample_weight, hooks):
        import scipy.optimize

        model = self._model
        net = model._net
        c = self._scale()
        self._compile(c, X.shape[0])
        yc = self._fm_targets(y)
        sw = self._normalized(sample_weight, model.dtype)
        if sw is not None:
            # sklearn divides the penalty by the weights' sum.
            model.compile(optimizer=model.optimizer, l1=float(self.l1),
                          l2=float(self.alpha) / (2.0 * c * float(np.sum(sample_weight))),
                          clip_norm=self.clip_norm)
        flat = net.params_flat()
        if is_sparse(X):
            if self.batch_norm:
                raise ValueError("solver='lbfgs' with batch_norm needs the statistics of the "
                                 "whole batch: give X dense, or use a stochastic solver")
            loss_grad = self._lbfgs_blocks(X, yc, sw, c)
        else:
            Xc = np.ascontiguousarray(X, dtype=model.dtype)

            def loss_grad(p):
                flat[...] = p
                loss = net.compute_gradients(Xc, yc, sw, None)
                return c * float(loss), c * np.asarray(net.grads_flat(), dtype=np.float64)

        stopped = []

        def iteration_done(xk):
            # scipy calls this after each L-BFGS iteration with its iterate;
            # each iteration is a callback subtask.
            self.n_iter_ += 1
            if hooks.end(xk):
                stopped.append(True)
                raise StopIteration
            hooks.begin("lbfgs iteration")

        self.n_iter_ = 0
        hooks.begin("lbfgs iteration")
        res = scipy.optimize.minimize(
            loss_grad, np.asarray(flat, dtype=np.float64), method="L-BFGS-B", jac=True,
            callback=iteration_done if hooks.ctx is not None else None,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol})
        self._compiled = False
        # A callback that asked to stop is not a failure to converge.
        self.n_iter_ = int(res.nit) if stopped else _check_optimize_result(
            "lbfgs", res, self.max_iter)
        flat[...] = res.x
        self.loss_ = float(res.fun)
        if not np.isfinite(flat).all():
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")

    def _lbfgs_blocks(self, X, yc, sw, c):
        """L-BFGS's loss and gradient for sparse X, a block of rows at a time.
        Each block's loss is its rows' mean plus the penalty (the same for
        every block), so the blocks weighted by their share of the rows sum to
        the whole set's mean plus the penalty, gradient likewise."""
        model = self._model
        net = model._net
        flat = net.params_flat()
        n = X.shape[0]
        step = model._block_rows()

        def loss_grad(p):
            flat[...] = p
            loss, grad = 0.0, np.zeros(flat.shape[0], dtype=np.float64)
            for lo in range(0, n, step):
                rows = slice(lo, lo + step)
                block = dense_rows(X, rows, model.dtype)
                share = block.shape[0] / n
                loss += share * float(net.compute_gradients(
                    block, yc[rows], None if sw is None else sw[rows], None))
                grad += share * np.asarray(net.grads_flat(), dtype=np.float64)
            return c * loss, c * grad

        return loss_grad

    def _fit_stochastic(self, X, y, sample_weight, incremental, rng, X_val, y_val, first,
                        hooks):
        model = self._model
        net = model._net
        c = self._scale()
        early_stopping = self.early_stopping or X_val is not None
        if early_stopping and X_val is None:
            stratify = y if (is_classifier(self) and self.n_outputs_ == 1) else None
            parts = train_test_split(
                X, y, *([] if sample_weight is None else [sample_weight]), random_state=rng,
                test_size=self.validation_fraction, stratify=stratify)
            X, X_val, y, y_val = parts[:4]
            if sample_weight is not None:
                sample_weight = parts[4]
            if X_val.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the size of your dataset.")
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
        elif early_stopping:
            X_val = validate_data(self, X_val, dtype=(np.float64, np.float32),
                                  accept_sparse=_SPARSE, reset=False)
        n = X.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n)
        else:
            if self.batch_size > n:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is "
                              "going to be clipped", stacklevel=4)
            batch_size = int(np.clip(self.batch_size, 1, n))
        if not incremental or not getattr(self, "_compiled", False):
            # As sklearn: a new optimizer for every fit (warm_start included);
            # partial_fit keeps its state.
            # sklearn divides a batch's penalty by its weight sum: batch_size
            # rows of the mean weight.
            mean_w = 1.0 if sample_weight is None else float(np.mean(sample_weight))
            self._compile(c, batch_size * mean_w if mean_w > 0 else batch_size)
            self._compiled = True
            self._lr = float(self.learning_rate_init)
        if first or not hasattr(self, "loss_curve_"):
            # As sklearn: the curves and the stopping state start with the
            # network; warm_start and partial_fit continue them.
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
            self._best = model._snapshot()
        # Checked and converted once per fit; each epoch then runs as one
        # epoch of model.fit would, without checking X again.
        data = model._fit_data(X, self._fm_targets(y),
                               self._normalized(sample_weight, model.dtype), None, None, 0.0)
        model._check_batch_size(batch_size, n)
        seed = int(rng.randint(np.iinfo(np.int32).max))
        epoch = trainer = None
        if self.comm is not None:
            trainer = distributed.Trainer(model, self.comm, self.reduction)
            # Every hyperparameter (stopping rules included): ranks that would
            # stop at different epochs must fail at the start, not hang.
            params = {k: repr(v) for k, v in sorted(self.get_params(deep=False).items())
                      if k != "comm"}
            trainer.agree({"batch_size": batch_size, "seed": seed, "params": params,
                           "incremental": bool(incremental)}, data)
            epoch = trainer.epoch
        self.n_iter_ = 0
        try:
            for _ in range(self.max_iter):
                hooks.begin("epoch")
                try:
                    h = model._run_epochs(data, 1, batch_size, bool(self.shuffle), seed, [], 0,
                                          epoch=epoch)
                except FloatingPointError:
                    raise ValueError(
                        "Solver produced non-finite parameter weights. The input data may "
                        "contain large values and need to be preprocessed.") from None
                self.n_iter_ += 1
                self.loss_ = c * float(h["loss"][-1])
                self.t_ += n
                self.loss_curve_.append(self.loss_)
                if self._talks():
                    print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
                self._update_no_improvement_count(early_stopping, X_val, y_val)
                if self.solver == "sgd" and self.learning_rate == "invscaling":
                    self._set_lr(self.learning_rate_init / (self.t_ + 1) ** self.power_t)
                if hooks.end():
                    break  # a callback asked to stop: not a convergence failure
                if self._no_improvement_count > self.n_iter_no_change:
                    if self._trigger_stopping(early_stopping):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                        "and the optimization hasn't converged yet.", ConvergenceWarning,
                        stacklevel=4)
        except KeyboardInterrupt as e:
            if trainer is not None:
                trainer.abort(e)  # this rank only: the others would wait for it
            warnings.warn("Training interrupted by user.", stacklevel=4)
        if early_stopping:
            model._restore(self._best)

    def _talks(self):
        """verbose, on one rank only with comm."""
        return bool(self.verbose) and (self.comm is None or self.comm.Get_rank() == 0)

    def _set_lr(self, lr):
        self._lr = float(lr)
        self._model._net.set_lr(self._lr * (self._scale() if self.solver == "sgd" else 1.0))

    def _trigger_stopping(self, early_stopping):
        """sklearn's: 'adaptive' sgd divides the rate by 5 until it is <= 1e-6;
        everything else stops."""
        what = "Validation score" if early_stopping else "Training loss"
        msg = (f"{what} did not improve more than tol={self.tol:f} for "
               f"{self.n_iter_no_change} consecutive epochs.")
        if self.solver == "sgd" and self.learning_rate == "adaptive":
            if self._lr <= 1e-6:
                if self._talks():
                    print(msg + " Learning rate too small. Stopping.")
                return True
            self._set_lr(self._lr / 5.0)
            if self._talks():
                print(msg + f" Setting learning rate to {self._lr:f}")
            return False
        if self._talks():
            print(msg + " Stopping.")
        return True

    def _update_no_improvement_count(self, early_stopping, X_val, y_val):
        if early_stopping:
            score = self._score(X_val, y_val)
            self.validation_scores_.append(score)
            if self._talks():
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                self._best = self._model._snapshot()
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, self.loss_curve_[-1])

    def _score(self, X, y):
        pred = self._predict_validated(X)
        if np.issubdtype(pred.dtype, np.floating) and not np.isfinite(pred).all():
            return np.nan
        return float((accuracy_score if is_classifier(self) else r2_score)(y, pred))

    @with_callbacks
    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
            X_val: ArrayLike | None = None, y_val: ArrayLike | None = None):
        """Fit the model to X and y (scikit-learn's fit).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
            Training rows (sparse X is densified a batch at a time).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets: labels for the classifier, values for the regressor.
        sample_weight : array-like of shape (n_samples,), optional
            Per-row weights.
        X_val, y_val : array-like, optional
            A validation set for early stopping, used instead of a
            validation_fraction split; giving one turns early stopping on.

        Returns
        -------
        self
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, incremental=False, X_val=X_val, y_val=y_val)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def _check_solver(self):
        if self.solver not in _STOCHASTIC:
            raise AttributeError(
                f"partial_fit is only available for stochastic optimizers. {self.solver} is "
                "not stochastic.")
        return True


class MLPClassifier(ClassifierMixin, _Base):
    """Multi-layer perceptron classifier: sklearn.neural_network.MLPClassifier,
    trained by fastmlp.

    The same constructor names and defaults, objective and fitted attributes
    as scikit-learn's (see the module notes on the objective's scaling);
    fastmlp's extras are the keywords dropout, batch_norm, l1, clip_norm,
    lr_schedule, class_weight, dtype and n_threads. Multiclass targets train
    a softmax output (cross_entropy), binary and multilabel ones sigmoid
    outputs (binary_cross_entropy).

    Parameters
    ----------
    hidden_layer_sizes : array-like of int, default (100,)
        The i-th element is the number of units of the i-th hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
        Activation of the hidden layers.
    solver : {"adam", "sgd", "lbfgs", "adamw", "rmsprop", "adagrad"}, default "adam"
        "lbfgs" is scipy's L-BFGS-B on the core's full-batch gradient; the
        others are fastmlp's optimizers on mini-batches.
    alpha : float, default 0.0001
        L2 penalty, ``0.5 * alpha * ||W||^2 / batch`` as in scikit-learn.
    batch_size : int or "auto", default "auto"
        Rows per mini-batch; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        Schedule of the "sgd" solver, as in scikit-learn.
    learning_rate_init : float, default 0.001
        Initial learning rate (stochastic solvers).
    power_t : float, default 0.5
        Exponent of "invscaling".
    max_iter : int, default 200
        Epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default True
        Shuffle the rows every epoch.
    random_state : int, RandomState instance or None, default None
        Seeds the initialization, the shuffling, dropout and the validation
        split.
    tol : float, default 1e-4
        Least improvement of the loss or validation score that counts.
    verbose : bool, default False
        Print the loss of every epoch.
    warm_start : bool, default False
        Continue from the previous fit's weights, curves and stopping state
        (with a fresh optimizer, as scikit-learn).
    momentum : float, default 0.9
        Momentum of the "sgd" solver.
    nesterovs_momentum : bool, default True
        Nesterov momentum for "sgd".
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows and stop when the
        validation score stops improving; the best weights are restored.
    validation_fraction : float, default 0.1
        The held-out fraction for early stopping.
    beta_1, beta_2 : float, default 0.9, 0.999
        Adam's moment decay rates.
    epsilon : float, default 1e-8
        Adam's and RMSprop's epsilon (in scikit-learn's loss scale).
    n_iter_no_change : int, default 10
        Epochs without improvement before stopping.
    max_fun : int, default 15000
        Largest number of loss evaluations of "lbfgs".
    dropout : float, default 0.0
        fastmlp: inverted-dropout rate of the hidden layers.
    batch_norm : bool, default False
        fastmlp: batch normalization in the hidden layers.
    l1 : float, default 0.0
        fastmlp: L1 penalty on the weights (fastmlp's scale, see
        :meth:`fastmlp.MLP.compile`).
    clip_norm : float, optional
        fastmlp: clip the global gradient norm to this.
    lr_schedule : fastmlp.optim.LRSchedule, optional
        fastmlp: a per-epoch learning-rate schedule (with
        ``learning_rate="constant"``).
    class_weight : dict, "balanced" or None, default None
        fastmlp: per-class weights, multiplied into the sample weights
        (scikit-learn's ``compute_sample_weight``).
    dtype : {"float32", "float64", "mixed_bfloat16"} or None, default None
        fastmlp: the precision of the network. None follows scikit-learn
        (float32 X stays float32, anything else becomes float64); "float32"
        is fastmlp's fast path; "mixed_bfloat16" keeps float32 parameters
        and feeds the GEMMs bfloat16 operands (fm.MLP's ``dtype``; needs
        AVX512_BF16, ValueError at fit otherwise).
    n_threads : int, optional
        fastmlp: threads of the core during fit; None follows
        ``fm.set_num_threads`` and threadpoolctl's limits.
    comm : mpi4py communicator, optional
        fastmlp: data-parallel training over MPI, as ``fm.MLP.fit``'s
        ``comm`` (every rank fits with the same arguments; the random state
        is rank 0's; stochastic solvers only).
    reduction : {"reproducible", "fast", "sharded"}, default "reproducible"
        fastmlp: how the gradients are summed across ranks with ``comm``
        (see :mod:`fastmlp.distributed`).

    Attributes
    ----------
    loss_ : float
        The loss of the last epoch, in scikit-learn's scale.
    loss_curve_ : list of float
        The loss of every epoch (stochastic solvers).
    best_loss_ : float or None
        The best loss seen (None with early stopping).
    validation_scores_ : list of float or None
        The validation score of every epoch, with early stopping.
    best_validation_score_ : float or None
        The best validation score, with early stopping.
    coefs_ : list of ndarray
        Weights per layer, shape (fan_in, fan_out): views of the network's
        parameters (``layer.W.T``), so writing into them changes the model.
    intercepts_ : list of ndarray
        Biases per layer, views as well.
    n_features_in_ : int
        Number of features seen in fit.
    n_iter_ : int
        Epochs (or L-BFGS iterations) run by the last fit.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        The output's activation.
    t_ : int
        Rows seen by the solver (for "invscaling").
    classes_ : ndarray
        The class labels.

    See Also
    --------
    fastmlp.MLP : the Keras-style model underneath.

    Examples
    --------
    >>> import fastmlp as fm
    >>> from fastmlp.datasets import make_spirals
    >>> X, y = make_spirals(n_per_class=100, seed=0)
    >>> clf = fm.MLPClassifier(hidden_layer_sizes=(32, 32), learning_rate_init=0.01,
    ...                        random_state=0).fit(X, y)
    >>> clf.score(X, y) > 0.95
    True
    >>> clf.predict_proba(X[:2]).shape
    (2, 3)
    """

    _parameter_constraints: dict = {
        **_Base._parameter_constraints,
        "class_weight": [dict, StrOptions({"balanced"}), None],
    }

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, batch_norm=False, l1=0.0, clip_norm=None, lr_schedule=None,
                 class_weight=None, dtype=None, n_threads=None, comm=None,
                 reduction="reproducible"):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun, dropout=dropout, batch_norm=batch_norm, l1=l1, clip_norm=clip_norm,
            lr_schedule=lr_schedule, dtype=dtype, n_threads=n_threads, comm=comm,
            reduction=reduction)
        self.class_weight = class_weight

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, dtype=(np.float64, np.float32),
                             accept_sparse=_SPARSE, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer()
            self._label_binarizer.fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        "warm_start can only be used where `y` has the same classes as in the "
                        f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                                 f"{self.classes_}. 'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(bool), y

    def _with_class_weight(self, labels, sample_weight):
        if self.class_weight is None:
            return sample_weight
        if self._label_binarizer.y_type_.startswith("multilabel"):
            raise ValueError("class_weight is not supported for multilabel targets")
        cw = compute_sample_weight(self.class_weight, labels)
        return cw if sample_weight is None else cw * sample_weight

    def _set_output(self, y):
        if self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_, self._fm_loss = "softmax", "cross_entropy"
        else:
            self.out_activation_, self._fm_loss = "logistic", "binary_cross_entropy"

    def _predict_validated(self, X):
        out = self._output(X)
        if self.n_outputs_ == 1:
            out = out.ravel()
        return self._label_binarizer.inverse_transform(out)

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Class labels for X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        ndarray
            Labels from ``classes_`` (n_samples,), or indicator rows for
            multilabel targets.
        """
        return self._predict_validated(self._check_X_predict(X))

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in ``classes_`` order.
        """
        out = self._output(self._check_X_predict(X))
        if self.n_outputs_ == 1:
            p = out.ravel()
            return np.vstack([1 - p, p]).T
        return out

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
        """``log(predict_proba(X))``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Log-probabilities.
        """
        p = self.predict_proba(X)
        return np.log(p, out=p)

    @available_if(lambda est: est._check_solver())
    @with_callbacks
    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None):
        """One epoch over X, y (stochastic solvers only).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
            Training rows.
        y : array-like of shape (n_samples,)
            Labels.
        sample_weight : array-like of shape (n_samples,), optional
            Per-row weights.
        classes : array-like, optional
            Every class; required on the first call.

        Returns
        -------
        self
            The estimator.
        """
        if _check_partial_fit_first_call(self, classes):
            self._label_binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._label_binarizer.fit(y)
            else:
                self._label_binarizer.fit(classes)
        return self._fit(X, y, sample_weight, incremental=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _Base):
    """Multi-layer perceptron regressor: sklearn.neural_network.MLPRegressor,
    trained by fastmlp.

    The same constructor names and defaults, objective and fitted attributes
    as scikit-learn's; fastmlp's extras are the keywords dropout, batch_norm,
    l1, clip_norm, lr_schedule, dtype and n_threads.

    Parameters
    ----------
    loss : {"squared_error", "poisson"}, default "squared_error"
        "squared_error" trains fastmlp's mse, "poisson" its poisson loss
        (the output is the predicted mean exp(z); targets >= 0).
    hidden_layer_sizes : array-like of int, default (100,)
        The i-th element is the number of units of the i-th hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default "relu"
        Activation of the hidden layers.
    solver : {"adam", "sgd", "lbfgs", "adamw", "rmsprop", "adagrad"}, default "adam"
        "lbfgs" is scipy's L-BFGS-B on the core's full-batch gradient; the
        others are fastmlp's optimizers on mini-batches.
    alpha : float, default 0.0001
        L2 penalty, ``0.5 * alpha * ||W||^2 / batch`` as in scikit-learn.
    batch_size : int or "auto", default "auto"
        Rows per mini-batch; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default "constant"
        Schedule of the "sgd" solver, as in scikit-learn.
    learning_rate_init : float, default 0.001
        Initial learning rate (stochastic solvers).
    power_t : float, default 0.5
        Exponent of "invscaling".
    max_iter : int, default 200
        Epochs (stochastic solvers) or iterations (lbfgs).
    shuffle : bool, default True
        Shuffle the rows every epoch.
    random_state : int, RandomState instance or None, default None
        Seeds the initialization, the shuffling, dropout and the validation
        split.
    tol : float, default 1e-4
        Least improvement of the loss or validation score that counts.
    verbose : bool, default False
        Print the loss of every epoch.
    warm_start : bool, default False
        Continue from the previous fit's weights, curves and stopping state
        (with a fresh optimizer, as scikit-learn).
    momentum : float, default 0.9
        Momentum of the "sgd" solver.
    nesterovs_momentum : bool, default True
        Nesterov momentum for "sgd".
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the rows and stop when the
        validation score stops improving; the best weights are restored.
    validation_fraction : float, default 0.1
        The held-out fraction for early stopping.
    beta_1, beta_2 : float, default 0.9, 0.999
        Adam's moment decay rates.
    epsilon : float, default 1e-8
        Adam's and RMSprop's epsilon (in scikit-learn's loss scale).
    n_iter_no_change : int, default 10
        Epochs without improvement before stopping.
    max_fun : int, default 15000
        Largest number of loss evaluations of "lbfgs".
    dropout : float, default 0.0
        fastmlp: inverted-dropout rate of the hidden layers.
    batch_norm : bool, default False
        fastmlp: batch normalization in the hidden layers.
    l1 : float, default 0.0
        fastmlp: L1 penalty on the weights (fastmlp's scale, see
        :meth:`fastmlp.MLP.compile`).
    clip_norm : float, optional
        fastmlp: clip the global gradient norm to this.
    lr_schedule : fastmlp.optim.LRSchedule, optional
        fastmlp: a per-epoch learning-rate schedule (with
        ``learning_rate="constant"``).
    dtype : {"float32", "float64", "mixed_bfloat16"} or None, default None
        fastmlp: the precision of the network. None follows scikit-learn
        (float32 X stays float32, anything else becomes float64); "float32"
        is fastmlp's fast path; "mixed_bfloat16" keeps float32 parameters
        and feeds the GEMMs bfloat16 operands (fm.MLP's ``dtype``; needs
        AVX512_BF16, ValueError at fit otherwise).
    n_threads : int, optional
        fastmlp: threads of the core during fit; None follows
        ``fm.set_num_threads`` and threadpoolctl's limits.
    comm : mpi4py communicator, optional
        fastmlp: data-parallel training over MPI, as ``fm.MLP.fit``'s
        ``comm`` (every rank fits with the same arguments; the random state
        is rank 0's; stochastic solvers only).
    reduction : {"reproducible", "fast", "sharded"}, default "reproducible"
        fastmlp: how the gradients are summed across ranks with ``comm``
        (see :mod:`fastmlp.distributed`).

    Attributes
    ----------
    loss_ : float
        The loss of the last epoch, in scikit-learn's scale.
    loss_curve_ : list of float
        The loss of every epoch (stochastic solvers).
    best_loss_ : float or None
        The best loss seen (None with early stopping).
    validation_scores_ : list of float or None
        The validation score of every epoch, with early stopping.
    best_validation_score_ : float or None
        The best validation score, with early stopping.
    coefs_ : list of ndarray
        Weights per layer, shape (fan_in, fan_out): views of the network's
        parameters (``layer.W.T``), so writing into them changes the model.
    intercepts_ : list of ndarray
        Biases per layer, views as well.
    n_features_in_ : int
        Number of features seen in fit.
    n_iter_ : int
        Epochs (or L-BFGS iterations) run by the last fit.
    n_layers_ : int
        Number of layers, input and output included.
    n_outputs_ : int
        Number of outputs.
    out_activation_ : str
        The output's activation.
    t_ : int
        Rows seen by the solver (for "invscaling").

    See Also
    --------
    fastmlp.MLP : the Keras-style model underneath.
    """

    _parameter_constraints: dict = {
        **_Base._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *,
                 solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dropout=0.0, batch_norm=False, l1=0.0, clip_norm=None, lr_schedule=None,
                 dtype=None, n_threads=None, comm=None, reduction="reproducible"):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver,
            alpha=alpha, batch_size=batch_size, learning_rate=learning_rate,
            learning_rate_init=learning_rate_init, power_t=power_t, max_iter=max_iter,
            shuffle=shuffle, random_state=random_state, tol=tol, verbose=verbose,
            warm_start=warm_start, momentum=momentum, nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, n_iter_no_change=n_iter_no_change,
            max_fun=max_fun, dropout=dropout, batch_norm=batch_norm, l1=l1, clip_norm=clip_norm,
            lr_schedule=lr_schedule, dtype=dtype, n_threads=n_threads, comm=comm,
            reduction=reduction)
        self.loss = loss

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True,
                             dtype=(np.float64, np.float32), accept_sparse=_SPARSE, reset=reset)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' requires non-negative y")
        return X, y, y

    def _set_output(self, y):
        if self.loss == "poisson":
            if "poisson" not in _enums.LOSSES:
                raise ValueError("loss='poisson' needs a fastmlp core with the poisson loss; "
                                 f"this one has {list(_enums.LOSSES)}")
            self.out_activation_, self._fm_loss = "exp", "poisson"
        else:
            self.out_activation_, self._fm_loss = "identity", "mse"

    def _predict_validated(self, X):
        out = self._output(X)
        return out.ravel() if out.shape[1] == 1 else out

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted values.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input rows.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            The predictions.
        """
        return self._predict_validated(self._check_X_predict(X))

    @available_if(lambda est: est._check_solver())
    @with_callbacks
    def partial_fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None):
        """One epoch over X, y (stochastic solvers only).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
            Training rows.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.
        sample_weight : array-like of shape (n_samples,), optional
            Per-row weights.

        Returns
        -------
        self
            The estimator.
        """
        return self._fit(X, y, sample_weight, incremental=True)
