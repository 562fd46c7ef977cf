"""Worker of tests/test_distributed.py, run as
``mpiexec -n N python -m mpi4py tests/_mpi_fit.py CASE OUT``.

Each case fits on every rank, checks that every rank ends with the same
bits (an assertion fails the job otherwise) and rank 0 writes what the test
compares into OUT (.npz)."""

import os
import sys

import numpy as np
from mpi4py import MPI

import fastmlp as fm
from fastmlp.distributed import Reproducible

comm = MPI.COMM_WORLD
rank = comm.Get_rank()
case, out = sys.argv[1], sys.argv[2]


def data(n=250, f=12, dtype=np.float32):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, f)).astype(dtype)
    y = ((X[:, 0] * 2 + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)).astype(np.int64)
    return X, y


def model(dtype="float32", opt=None):
    m = fm.MLP([12, 16, 16, 3], dropout=0.2, batch_norm=True, seed=3, dtype=dtype)
    m.compile(optimizer=opt or fm.optim.Adam(lr=1e-2), l2=1e-3, clip_norm=1.0,
              lr_schedule=fm.optim.StepLR(2, gamma=0.5))
    return m


def sharded_model(dtype, adam=True):
    m = fm.MLP([12, 16, 16, 3], dropout=0.2, batch_norm=True, seed=3, dtype=dtype)
    opt = fm.optim.Adam(lr=1e-2) if adam else fm.optim.SGD(lr=0.1, momentum=0.9, nesterov=True)
    m.compile(optimizer=opt, l1=1e-4, l2=1e-3, clip_value=0.5,
              clip_norm=1.0, lr_schedule=fm.optim.StepLR(2, gamma=0.5))
    return m


def same_everywhere(*arrays):
    for a in arrays:
        a = np.ascontiguousarray(a)
        first = a.copy()
        comm.Bcast(first, root=0)
        assert np.array_equal(a, first), f"rank {rank} differs from rank 0"


def state(m):
    net = m._net
    arrays = {"params": np.array(net.params_flat())}
    arrays.update({k: np.array(v) for k, v in m._running_stats().items()})
    for j, st in enumerate(net.optimizer_state()):
        arrays[f"opt_{j}"] = np.array(st)
    return arrays


def save(arrays, history=None):
    same_everywhere(*arrays.values())
    if history is not None:
        for k, v in history.items():
            if k == "time":  # wall time: each rank's own
                continue
            arrays["history_" + k] = np.asarray(v, dtype=np.float64)
            same_everywhere(arrays["history_" + k])
    if rank == 0:
        np.savez(out, **arrays)


def messages_of(run):
    """Each rank's ValueError message from run() ("no error" without one),
    gathered on rank 0 and saved."""
    try:
        run()
    except ValueError as e:
        msg = str(e)
    else:
        msg = "no error"
    msgs = comm.gather(msg)
    if rank == 0:
        np.savez(out, messages=np.array(msgs))


if case == "mixed":
    # mixed_bfloat16: bf16 products, float32 master weights (its panels are
    # repacked from rank 0's weights after the broadcast).
    X, y = data()
    m = model("mixed_bfloat16")
    h = m.fit(X, y, epochs=2, batch_size=96, comm=comm, reduction=Reproducible(16), verbose=0)
    save(state(m), h.history)
elif case in ("reproducible", "fast", "memmap"):
    X, y = data()
    Xv, yv = data(60)
    if case == "memmap":
        path = out + ".X.npy"
        if rank == 0:
            np.save(path, X)
        comm.Barrier()
        X = np.load(path, mmap_mode="r")
    m = model()
    reduction = Reproducible(16) if case != "fast" else "fast"
    h = m.fit(X, y, epochs=4, batch_size=96, comm=comm, reduction=reduction, verbose=0,
              validation_data=(Xv, yv), early_stopping=3)
    save(state(m), h.history)
elif case == "fast_vs_single":
    X, y = data(dtype=np.float64)
    m = model("float64", fm.optim.SGD(lr=0.1, momentum=0.9))
    m.fit(X, y, epochs=2, batch_size=96, comm=comm, reduction="fast", verbose=0)
    save(state(m))
elif case in ("sharded_vs_single_sgd", "sharded_vs_single_adam"):
    # Every part of the sharded step: L1 and L2 on the shard's weights, both
    # clippings (the norm after clipping by value summed over the shards),
    # the optimizer state stepped per shard and gathered.
    X, y = data(dtype=np.float64)
    m = sharded_model("float64", case.endswith("adam"))
    h = m.fit(X, y, epochs=3, batch_size=96, comm=comm, verbose=0,
              reduction=os.environ.get("FASTMLP_TEST_REDUCTION", "sharded"))
    save(state(m), h.history)
elif case in ("sharded", "sharded_mixed"):
    X, y = data()
    Xv, yv = data(60)
    m = model("mixed_bfloat16" if case == "sharded_mixed" else "float32")
    h = m.fit(X, y, epochs=4, batch_size=96, comm=comm, reduction="sharded", verbose=0,
              validation_data=(Xv, yv), early_stopping=3)
    save(state(m), h.history)
elif case == "sharded_edges":
    # Cases that need their own paths, each fitted with reduction="sharded"
    # and "fast" in the same run (float64, SGD): equal to ~1e-13, and the
    # same on every rank.
    def both(make, fit_kwargs, X, y):
        out = []
        for red in ("sharded", "fast"):
            m = make()
            m.fit(X, y, comm=comm, reduction=red, verbose=0, **fit_kwargs)
            out.append(np.array(m._net.params_flat()))
            same_everywhere(*state(m).values())
        np.testing.assert_allclose(out[0], out[1], rtol=0, atol=1e-13 * np.abs(out[1]).max())
        return out[0]

    def tiny():
        m = fm.MLP([12, 1], seed=1, dtype="float64", loss="mse")
        m.compile(optimizer=fm.optim.SGD(lr=0.1), l2=1e-3)
        return m

    def small():
        m = fm.MLP([12, 8, 3], seed=2, dtype="float64")
        m.compile(optimizer=fm.optim.SGD(lr=0.1, momentum=0.9))
        return m

    X, y = data(dtype=np.float64)
    arrays = {}
    # 13 parameters, fewer than 16 per rank: empty shards.
    arrays["tiny"] = both(tiny, {"epochs": 2, "batch_size": 64}, X, X[:, :1] * 0.5)
    # 23 rows in batches of 2: the last batch leaves a rank without rows.
    arrays["no_rows"] = both(small, {"epochs": 2, "batch_size": 2}, X[:23], y[:23])
    # Sample and class weights.
    w = np.linspace(0.5, 2.0, len(X))
    arrays["weights"] = both(small, {"epochs": 2, "batch_size": 50, "sample_weight": w,
                                     "class_weight": {0: 1.0, 1: 2.0, 2: 0.5}}, X, y)

    # A stop asked by one rank only, from a per-batch callback: every rank
    # stops there, and the callback sees every shard's optimizer state.
    class StopOnOne(fm.Callback):
        every_n_batches = 2

        def on_train_begin(self, model):
            self._model = model

        def on_batch_end(self, batch, logs):
            same_everywhere(*state(self._model).values())
            return rank == comm.Get_size() - 1 and batch == 4

    m = small()
    h = m.fit(X, y, epochs=3, batch_size=32, comm=comm, reduction="sharded", verbose=0,
              callbacks=[StopOnOne()])
    same_everywhere(*state(m).values())
    arrays["stopped_epochs"] = np.array(len(h.history["loss"]))
    save(arrays)
elif case == "sharded_mixed_panels":
    # mixed_bfloat16: after a sharded fit the bf16 weight panels hold the
    # gathered weights (a stale panel would still be the same on every rank).
    import pickle
    X, y = data()
    m = model("mixed_bfloat16")
    m.fit(X, y, epochs=2, batch_size=96, comm=comm, reduction="sharded", verbose=0)
    fresh = pickle.loads(pickle.dumps(m))
    assert np.array_equal(m.predict_proba(X), fresh.predict_proba(X)), "stale bf16 panels"
    save({"proba": m.predict_proba(X)})
elif case == "sharded_diverges":
    # Every rank raises Diverged at the same step, with the parameters of the
    # step before and every shard's optimizer state gathered.
    X, y = data(dtype=np.float64)
    X[130:, 0] = 1e200  # finite input, overflowing activations
    m = fm.MLP([12, 16, 16, 3], seed=3, dtype="float64")
    m.compile(optimizer=fm.optim.Adam(lr=1e-2), l2=1e-3, clip_norm=1.0)
    try:
        m.fit(X, y, epochs=2, batch_size=64, shuffle=False, comm=comm, reduction="sharded",
              verbose=0)
    except fm.distributed.Diverged as e:
        msg = str(e)
    else:
        msg = "no error"
    msgs = comm.gather(msg)
    arrays = state(m)
    if rank == 0:
        arrays["messages"] = np.array(msgs)
    same_everywhere(*state(m).values())
    if rank == 0:
        np.savez(out, **arrays)
elif case == "mismatch":
    X, y = data()
    m = model()
    messages_of(lambda: m.fit(X, y, epochs=1, batch_size=96 if rank == 0 else 64, comm=comm,
                              verbose=0))
elif case in ("fail", "fail_upfront"):
    X, y = data()
    if rank == 1:
        X = X.copy()
        X[200, 3] = np.nan  # only this rank's rows of one batch see it
    if case == "fail":
        # A memmap is read a batch at a time: the NaN shows inside fit, on
        # rank 1 only. (An array in memory is checked before fit starts.)
        path = f"{out}.{rank}.npy"
        np.save(path, X)
        X = np.load(path, mmap_mode="r")
    m = model()
    m.fit(X, y, epochs=2, batch_size=250, shuffle=False, comm=comm,
          reduction=Reproducible(125), verbose=0)
    if rank == 0:
        np.savez(out, finished=np.array(True))
elif case == "estimator":
    X, y = data()
    clf = fm.MLPClassifier(hidden_layer_sizes=(16,), max_iter=5, batch_size=64, random_state=0,
                           comm=comm, dtype="float32",
                           reduction=os.environ.get("FASTMLP_TEST_REDUCTION") or Reproducible(16),
                           batch_norm=True, dropout=0.1)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    # random_state=None: every rank still trains rank 0's network.
    free = fm.MLPRegressor(hidden_layer_sizes=(8,), max_iter=3, comm=comm, dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        free.fit(X, X[:, 0])
    same_everywhere(*free.coefs_)
    arrays = {f"coef_{i}": c for i, c in enumerate(clf.coefs_)}
    arrays["loss_curve"] = np.asarray(clf.loss_curve_)
    arrays["proba"] = clf.predict_proba(X)
    save(arrays)
elif case == "validation_split":
    # float64 data into a float32 model, in memory and as a memmap: the
    # held-out rows are converted like the training rows.
    X, y = data(dtype=np.float64)
    path = out + ".X64.npy"
    if rank == 0:
        np.save(path, X)
    comm.Barrier()
    arrays = {}
    for name, Xin in (("array", X), ("memmap", np.load(path, mmap_mode="r"))):
        m = model()
        h = m.fit(Xin, y, epochs=2, batch_size=64, validation_split=0.2, comm=comm, verbose=0)
        arrays[f"{name}_params"] = np.array(m._net.params_flat())
        arrays[f"{name}_val_loss"] = np.asarray(h.history["val_loss"])
    save(arrays)
elif case == "stop_one_rank":
    # A callback that asks to stop on rank 0 only: every rank stops there.
    class StopOnRoot(fm.Callback):
        def on_epoch_end(self, epoch, logs):
            return rank == 0 and epoch == 2
    X, y = data()
    m = model()
    h = m.fit(X, y, epochs=5, batch_size=64, comm=comm, verbose=0, callbacks=[StopOnRoot()])
    save({"epochs": np.array(len(h.history["loss"])), **state(m)})
elif case == "mismatch_callback":
    X, y = data()
    m = model()
    messages_of(lambda: m.fit(
        X, y, epochs=3, batch_size=64, comm=comm, verbose=0,
        early_stopping=fm.EarlyStopping(monitor="loss", patience=1 if rank == 0 else 8)))
elif case == "mismatch_estimator":
    import warnings
    X, y = data()
    clf = fm.MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0, comm=comm,
                           n_iter_no_change=1 if rank == 0 else 5)

    def fit():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
    messages_of(fit)
elif case == "comm_self":
    # comm=COMM_SELF trains what comm=None trains, bit for bit.
    import warnings
    X, y = data()
    fits = []
    for c in (None, MPI.COMM_SELF):
        # One piece per batch: the same products as the single-process step.
        clf = fm.MLPClassifier(hidden_layer_sizes=(8,), max_iter=4, random_state=None,
                               comm=c, dtype="float32", reduction=Reproducible(1024))
        np.random.seed(5)  # random_state=None draws from the global generator
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
        fits.append(clf.coefs_[0].copy())
    np.savez(out, none=fits[0], self_=fits[1])
else:
    raise SystemExit(f"unknown case {case}")
