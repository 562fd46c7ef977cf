"""Data-parallel fit over MPI (fastmlp.distributed).

The core's share of a step (Network.forward_backward_pieces) is checked in
one process against the whole-batch step; the MPI fits launch real
processes with ``mpiexec -n N python -m mpi4py tests/_mpi_fit.py`` (one
machine, oversubscribed where it has fewer cores) and skip, saying why,
where mpi4py or mpiexec is missing (``pip install 'fastmlp[mpi]'``)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastmlp as fm
from fastmlp import _core, distributed

WORKER = Path(__file__).with_name("_mpi_fit.py")
TIMEOUT = 240


def _mpiexec():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None
    for cand in (Path(sys.executable).with_name("mpiexec"), shutil.which("mpiexec")):
        if cand and Path(cand).exists():
            return str(cand)
    return None


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(
    MPIEXEC is None, reason="mpi4py or mpiexec not installed (pip install 'fastmlp[mpi]')")


def launch(n, case, tmp_path, check=True, **env_extra):
    out = str(tmp_path / f"{case}_{n}_{'_'.join(env_extra.values())}.npz")
    env = dict(os.environ, OMP_NUM_THREADS="1", **env_extra)
    cmd = [MPIEXEC, "-n", str(n), sys.executable, "-m", "mpi4py", str(WORKER), case, out]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {res.returncode}\n{res.stdout}\n"
                             f"{res.stderr[-4000:]}")
    return res, out


def load(path):
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


# -- one process: the core's share of a step ---------------------------------

def _net(dtype=np.float64, batch_norm=True, dropout=0.25):
    m = fm.MLP([6, 9, 7, 3], batch_norm=batch_norm, dropout=dropout, seed=5,
               dtype="float64" if dtype == np.float64 else "float32")
    m.compile(optimizer=fm.optim.SGD(lr=0.1))
    rng = np.random.default_rng(1)
    X = rng.standard_normal((23, 6)).astype(dtype)
    y = rng.integers(0, 3, 23).astype(np.int32)
    m.train_step(X[:4], y[:4])  # builds it and takes a step (step counter 1)
    return m, X, y


def _local_reduce(partials, out):
    out[...] = partials.sum(axis=0)


@pytest.mark.parametrize("bounds", [[0, 23], [0, 5, 6, 17, 23], [0, 1, 2, 23]])
def test_pieces_sum_to_the_whole_batch_gradient(bounds):
    m, X, y = _net()
    net = m._net
    full_loss = net.forward_backward(X, y)
    full = np.array(net.grads_flat())
    net2 = _net()[0]._net
    r = net2.forward_backward_pieces(X, y, None, None, 0, 23, 23.0, bounds, _local_reduce)
    total = np.array(net2.grads_flat())
    for q in range(len(bounds) - 2):
        total += net2.piece_grads()[q]
    np.testing.assert_allclose(total, full, rtol=1e-12, atol=1e-14)
    assert r["losses"].shape == (len(bounds) - 1,)
    assert abs(r["losses"].sum() - full_loss) <= 1e-13 * abs(full_loss)
    # finish_step takes the global rows.
    s = net2.finish_step(float(r["losses"].sum()), 23)
    assert s.ok


def test_folded_pieces_equal_fastmlp_reference():
    """The reproducible share's gradient (four pieces, the tree added in the
    core by gemm_pieces and fold_pieces) against fm.reference's backward."""
    from fastmlp import reference as ref
    m, X, y = _net(batch_norm=False, dropout=0.0)
    net = m._net
    bounds = [0, 5, 11, 17, 23]
    r = net.forward_backward_pieces(X, y, None, None, 0, 23, 23.0, bounds, _local_reduce,
                                    first_piece=0, total_pieces=4)
    twin = ref.Network([layer.W.copy() for layer in m.layers],
                       [layer.b.copy() for layer in m.layers],
                       [layer.activation for layer in m.layers], m.loss_name)
    loss, grads = twin.backward(X, y)
    assert abs(r["losses"].sum() - loss) <= 1e-13 * abs(loss)
    for li, g in enumerate(grads):
        for key in ("W", "b"):
            got = np.array(net.grad(li, key))
            np.testing.assert_allclose(got, g[key], rtol=1e-12, atol=1e-14,
                                       err_msg=f"layer {li} {key}")


def test_rows_split_over_two_shares_equal_the_whole_step():
    """Two 'processes' in one: rows [0, 9) and [9, 23) of one global batch,
    batch-norm sums combined by hand, dropout keyed by the global rows."""
    m, X, y = _net()
    net = m._net
    full_loss = net.forward_backward(X, y)
    full = np.array(net.grads_flat())
    shares = [(0, 9), (9, 23)]
    nets = [_net()[0]._net for _ in shares]
    # Run the two shares in lock step: each reduce call waits for the other's.
    import threading
    barrier = threading.Barrier(2)
    slots = [None, None]
    results = [None, None]

    def hook(i):
        def reduce(partials, out):
            slots[i] = partials.sum(axis=0)
            barrier.wait()
            out[...] = slots[0] + slots[1]
            barrier.wait()
        return reduce

    def run(i):
        lo, hi = shares[i]
        results[i] = nets[i].forward_backward_pieces(
            np.ascontiguousarray(X[lo:hi]), y[lo:hi], None, None, lo, 23, 23.0, [0, hi - lo],
            hook(i))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = np.array(nets[0].grads_flat()) + np.array(nets[1].grads_flat())
    np.testing.assert_allclose(total, full, rtol=1e-12, atol=1e-14)
    loss = results[0]["losses"].sum() + results[1]["losses"].sum()
    assert abs(loss - full_loss) <= 1e-13 * abs(full_loss)


def test_a_share_with_no_rows_still_takes_part():
    m, X, y = _net()
    calls = []

    def reduce(partials, out):
        calls.append(partials.shape)
        out[...] = 1.0  # some other process's sums
    r = m._net.forward_backward_pieces(np.empty((0, 6)), np.empty(0, np.int32), None, None,
                                       0, 8, 8.0, [0], reduce)
    assert r["losses"].shape == (0,)
    # Two sums forward and one backward per batch-norm layer (two layers).
    assert calls == [(0, 9), (0, 9), (0, 7), (0, 7), (0, 14), (0, 18)]
    assert m._net.finish_step(0.0, 8).ok


def _dtypes():
    out = ["float64", "float32"]
    if _core.have_bf16_instructions():
        out.append("mixed_bfloat16")
    return out


@pytest.mark.parametrize("dtype", _dtypes())
@pytest.mark.parametrize("sizes", [[5, 3, 2], [70, 300, 33, 10], [784, 256, 10]])
def test_a_piece_gives_the_same_bits_whoever_holds_it(dtype, sizes):
    """What the reproducible reduction rests on: a piece's gradient and loss
    do not depend on which other rows its process holds (the forward and
    dX products are row by row for any row count, dW and db per piece)."""
    _same_bits_whoever_holds_it(dtype, sizes, 80, 16)


@pytest.mark.parametrize("dtype", _dtypes())
def test_more_rows_than_gemm_pieces_packs_give_the_same_bits(dtype):
    # 5 pieces of 450 rows: the whole share is above gemm_pieces_max_k (two
    # k blocks: 2048 float32, 1024 float64 rows), so its products are formed
    # piece by piece and added by fold_pieces; shares of one to three pieces
    # go through gemm_pieces. Both must give the same bits.
    _same_bits_whoever_holds_it(dtype, [5, 3, 2], 2250, 450)
    # The tree too: all five pieces folded in one share (piece by piece)
    # against the shares [0, 2) and [2, 5), each folded in its own way, and
    # their root added here.
    rng = np.random.default_rng(4)
    m = fm.MLP([5, 3, 2], activation="tanh", seed=1, dtype=dtype)
    m.compile(optimizer=fm.optim.SGD(lr=0.1))
    ft = np.float64 if dtype == "float64" else np.float32
    X = rng.standard_normal((2250, 5)).astype(ft)
    y = rng.integers(0, 2, 2250).astype(np.int32)
    m.train_step(X[:2], y[:2])
    net = m._net

    def share(lo, hi):
        rows = slice(lo * 450, hi * 450)
        bounds = [450 * q for q in range(hi - lo + 1)]
        net.forward_backward_pieces(np.ascontiguousarray(X[rows]), y[rows], None, None,
                                    lo * 450, 2250, 2250.0, bounds, _local_reduce,
                                    first_piece=lo, total_pieces=5)
        return np.array(net.grads_flat())
    whole = share(0, 5)
    np.testing.assert_array_equal(share(0, 2) + share(2, 5), whole)


def _same_bits_whoever_holds_it(dtype, sizes, n, piece):
    rng = np.random.default_rng(2)
    m = fm.MLP(sizes, activation="tanh", seed=1, dtype=dtype)
    m.compile(optimizer=fm.optim.SGD(lr=0.1))
    ft = np.float64 if dtype == "float64" else np.float32
    X = rng.standard_normal((n, sizes[0])).astype(ft)
    y = rng.integers(0, sizes[-1], n).astype(np.int32)
    m.train_step(X[:2], y[:2])
    net = m._net
    P = net.params_flat().shape[0]

    def pieces(lo, hi):
        """Pieces lo..hi-1 of the batch, held by one process."""
        bounds = [q * piece - lo * piece for q in range(lo, hi + 1)]
        rows = slice(lo * piece, hi * piece)
        r = net.forward_backward_pieces(np.ascontiguousarray(X[rows]), y[rows], None, None,
                                        lo * piece, n, float(n), bounds, _local_reduce)
        g = [np.array(net.grads_flat())] + [np.array(net.piece_grads()[q])
                                           for q in range(hi - lo - 1)]
        return r["losses"], g

    all_losses, all_grads = pieces(0, n // piece)
    for lo, hi in [(0, 1), (1, 3), (2, 5), (4, 5)]:
        losses, grads = pieces(lo, hi)
        np.testing.assert_array_equal(losses, all_losses[lo:hi])
        for q, g in enumerate(grads):
            assert g.shape == (P,)
            np.testing.assert_array_equal(g, all_grads[lo + q], err_msg=f"piece {lo + q}")


def _clipped_net(dtype):
    m, X, y = _net(dtype)
    m.compile(optimizer=fm.optim.Adam(lr=1e-2), l1=1e-3, l2=1e-2, clip_value=0.05,
              clip_norm=0.1)
    m.train_step(X[:4], y[:4])
    return m, X, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_shard_over_the_whole_buffer_is_finish_step_bitwise(dtype):
    a, X, y = _clipped_net(dtype)
    b, _, _ = _clipped_net(dtype)
    sa = a._net.finish_step(a._net.forward_backward(X, y), 23)
    loss = b._net.forward_backward(X, y)
    P = b._net.params_flat().shape[0]
    sb = b._net.finish_shard(loss, 23, 0, P, lambda part, out: out.__setitem__(..., part))
    assert sa.loss == sb.loss and sa.ok and sb.ok
    np.testing.assert_array_equal(b._net.params_flat(), a._net.params_flat())
    for u, v in zip(b._net.optimizer_state(), a._net.optimizer_state()):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(b._net.grad_norms(), a._net.grad_norms())


@pytest.mark.parametrize("cut", [1, 37, 96, 200])
def test_two_shards_stepped_apart_make_the_whole_step(cut):
    """Two 'processes' in one: each steps its shard [0, cut) or [cut, P)
    with the other's partial sums added by hand (recorded in a first run),
    L1, L2 and both clippings on; the stitched result is the whole step's."""
    ref, X, y = _clipped_net(np.float64)
    ref._net.finish_step(ref._net.forward_backward(X, y), 23)
    P = ref._net.params_flat().shape[0]
    shards = [(0, cut), (cut, P)]

    def run(others):
        """Each shard's step; reduce adds others[i][call] to this shard's
        partials. Returns the models and each shard's recorded partials."""
        models, seen = [], []
        for i, (lo, hi) in enumerate(shards):
            m = _clipped_net(np.float64)[0]
            loss = m._net.forward_backward(X, y)
            mine = []

            def reduce(part, out, i=i, mine=mine):
                mine.append(np.array(part))
                out[...] = part + (others[i][len(mine) - 1] if others else 0.0)
            s = m._net.finish_shard(loss, 23, lo, hi, reduce)
            assert s.ok
            models.append(m)
            seen.append(mine)
        return models, seen

    _, seen = run(None)
    assert [len(x) for x in seen] == [2, 2]  # penalties and norms; the norm after clipping
    models, _ = run([seen[1], seen[0]])
    got = np.array(models[0]._net.params_flat())
    got[cut:] = models[1]._net.params_flat()[cut:]
    want = np.array(ref._net.params_flat())
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * np.abs(want).max())
    for j, st in enumerate(ref._net.optimizer_state()):
        mine = np.array(models[0]._net.optimizer_state()[j])
        mine[cut:] = models[1]._net.optimizer_state()[j][cut:]
        np.testing.assert_allclose(mine, st, rtol=0, atol=1e-13 * np.abs(st).max())
    np.testing.assert_allclose(models[0]._net.grad_norms(), ref._net.grad_norms(), rtol=1e-13)


def test_finish_shard_checks_its_arguments():
    m, X, y = _net()
    net = m._net
    P = net.params_flat().shape[0]
    with pytest.raises(ValueError, match="no forward_backward"):
        net.finish_shard(1.0, 23, 0, P, _local_reduce)
    loss = net.forward_backward(X, y)
    with pytest.raises(ValueError, match="shard"):
        net.finish_shard(loss, 23, 0, P + 1, _local_reduce)

    def failing(part, out):
        raise KeyError("from reduce")
    loss = net.forward_backward(X, y)
    before = np.array(net.params_flat())
    with pytest.raises(KeyError, match="from reduce"):
        net.finish_shard(loss, 23, 0, P, failing)
    np.testing.assert_array_equal(net.params_flat(), before)


@pytest.mark.parametrize("first", [0, 1, 3, 5, 64, 130])
def test_dropout_mask_of_later_elements(first):
    full = np.empty(first + 301, np.float32)
    _core.dropout_mask(full, 0.3, 7, 11, 2)
    part = np.empty(301, np.float32)
    _core.dropout_mask(part, 0.3, 7, 11, 2, first=first)
    np.testing.assert_array_equal(part, full[first:])


def test_reduce_errors_propagate_and_leave_no_pending_step():
    m, X, y = _net()

    def reduce(partials, out):
        raise RuntimeError("network down")
    with pytest.raises(RuntimeError, match="network down"):
        m._net.forward_backward_pieces(X, y, None, None, 0, 23, 23.0, [0, 23], reduce)
    with pytest.raises(ValueError, match="no forward_backward"):
        m._net.finish_step(0.0, 23)


def test_piece_gradient_views_stay_valid_when_more_pieces_come():
    m, X, y = _net()
    net = m._net
    net.forward_backward_pieces(X, y, None, None, 0, 23, 23.0, [0, 10, 23], _local_reduce)
    first = net.piece_grads()
    assert len(first) == 1
    before = first[0].copy()
    net.forward_backward_pieces(X, y, None, None, 0, 23, 23.0, [0, 5, 10, 23], _local_reduce)
    again = net.piece_grads()
    assert len(again) == 2
    # The first buffer did not move: the old view sees the new piece 1.
    assert first[0].ctypes.data == again[0].ctypes.data
    np.testing.assert_array_equal(first[0], again[0])
    assert not np.array_equal(before, again[0])


def test_bad_pieces_are_refused():
    m, X, y = _net()
    for den in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="den"):
            m._net.forward_backward_pieces(X, y, None, None, 0, 23, den, [0, 23],
                                           _local_reduce)
    with pytest.raises(ValueError, match="pieces"):
        m._net.forward_backward_pieces(X, y, None, None, 0, 23, 23.0, [0, 5, 5, 23],
                                       _local_reduce)
    with pytest.raises(ValueError, match="rows"):
        m._net.forward_backward_pieces(X, y, None, None, 5, 23, 23.0, [0, 23], _local_reduce)


def test_comm_and_reduction_arguments_are_checked():
    m, X, y = _net()
    with pytest.raises(ValueError, match="reduction"):
        m.fit(X, y, epochs=1, reduction="exact", verbose=0)
    with pytest.raises(ValueError, match="piece_rows"):
        distributed.Reproducible(0)
    if MPIEXEC is not None:
        with pytest.raises(TypeError, match="comm: expected an mpi4py"):
            m.fit(X, y, epochs=1, comm=object(), verbose=0)


def test_without_mpi4py_the_error_says_what_to_install(monkeypatch):
    m, X, y = _net()
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"fastmlp\[mpi\]"):
        m.fit(X, y, epochs=1, comm=object(), verbose=0)


# -- real processes -------------------------------------------------------------

@needs_mpi
def test_reproducible_is_bitwise_the_same_for_1_2_3_processes(tmp_path):
    runs = [load(launch(n, "reproducible", tmp_path)[1]) for n in (1, 2, 3)]
    for n, r in zip((2, 3), runs[1:]):
        assert r.keys() == runs[0].keys()
        for k in runs[0]:
            np.testing.assert_array_equal(r[k], runs[0][k], err_msg=f"{k}, {n} processes")
    # It trained: the loss went down, validation ran each epoch.
    loss = runs[0]["history_loss"]
    assert loss[-1] < loss[0]
    assert runs[0]["history_val_loss"].shape == loss.shape


@needs_mpi
@pytest.mark.skipif(not _core.have_bf16_instructions(),
                    reason="this CPU has no AVX512_BF16 (mixed_bfloat16 needs it)")
def test_reproducible_mixed_bfloat16_for_1_2_3_processes(tmp_path):
    runs = [load(launch(n, "mixed", tmp_path)[1]) for n in (1, 2, 3)]
    for n, r in zip((2, 3), runs[1:]):
        for k in runs[0]:
            np.testing.assert_array_equal(r[k], runs[0][k], err_msg=f"{k}, {n} processes")


@needs_mpi
def test_memmap_input_gives_the_same_model(tmp_path):
    a = load(launch(2, "memmap", tmp_path)[1])
    b = load(launch(2, "reproducible", tmp_path)[1])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@needs_mpi
def test_fast_equals_the_single_process_fit_up_to_rounding(tmp_path):
    for n in (2, 3):
        got = load(launch(n, "fast_vs_single", tmp_path)[1])
        rng = np.random.default_rng(0)
        X = rng.standard_normal((250, 12))
        y = ((X[:, 0] * 2 + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)).astype(np.int64)
        m = fm.MLP([12, 16, 16, 3], dropout=0.2, batch_norm=True, seed=3, dtype="float64")
        m.compile(optimizer=fm.optim.SGD(lr=0.1, momentum=0.9), l2=1e-3, clip_norm=1.0,
                  lr_schedule=fm.optim.StepLR(2, gamma=0.5))
        m.fit(X, y, epochs=2, batch_size=96, verbose=0)
        want = np.array(m._net.params_flat())
        np.testing.assert_allclose(got["params"], want, rtol=0, atol=1e-12 * np.abs(want).max())


def _single_sharded_fit(adam):
    """The single-process fit that tests/_mpi_fit.py's sharded_model runs over MPI."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((250, 12))
    y = ((X[:, 0] * 2 + X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)).astype(np.int64)
    m = fm.MLP([12, 16, 16, 3], dropout=0.2, batch_norm=True, seed=3, dtype="float64")
    opt = fm.optim.Adam(lr=1e-2) if adam else fm.optim.SGD(lr=0.1, momentum=0.9, nesterov=True)
    m.compile(optimizer=opt, l1=1e-4, l2=1e-3, clip_value=0.5, clip_norm=1.0,
              lr_schedule=fm.optim.StepLR(2, gamma=0.5))
    h = m.fit(X, y, epochs=3, batch_size=96, verbose=0)
    want = {"params": np.array(m._net.params_flat())}
    want.update({f"opt_{j}": np.array(s) for j, s in enumerate(m._net.optimizer_state())})
    want.update({k: np.array(v) for k, v in m._running_stats().items()})
    return want, h.history


@needs_mpi
@pytest.mark.parametrize("transport", ["shared", "mpi"])
@pytest.mark.parametrize("n", [2, 3])
def test_sharded_equals_the_single_process_fit_up_to_rounding(tmp_path, n, transport):
    # SGD with Nesterov momentum, L1, L2, clipping by value then by norm,
    # batch norm, dropout: parameters, momentum and running statistics to
    # 1e-12. transport "mpi": Reduce_scatter / Allgatherv, as between machines.
    env = {"FASTMLP_SHARDED_TRANSPORT": "mpi"} if transport == "mpi" else {}
    got = load(launch(n, "sharded_vs_single_sgd", tmp_path, **env)[1])
    want, hist = _single_sharded_fit(adam=False)
    for k, w in want.items():
        np.testing.assert_allclose(got[k], w, rtol=0, atol=1e-12 * np.abs(w).max(), err_msg=k)
    np.testing.assert_allclose(got["history_loss"], hist["loss"], rtol=1e-12)
    np.testing.assert_allclose(got["history_grad_norm_0"], hist["grad_norm_0"], rtol=1e-12)


@needs_mpi
def test_sharded_adam_state_is_gathered(tmp_path):
    # Adam: each rank steps the moments of its shard only; after fit every
    # rank holds all of them (same on every rank: checked by the worker),
    # equal to the single-process fit's. Adam's normalized step lifts the
    # rounding of near-zero gradients, so the parameters (and the running
    # statistics that follow from them) are compared at 1e-9.
    got = load(launch(2, "sharded_vs_single_adam", tmp_path)[1])
    want, _ = _single_sharded_fit(adam=True)
    for k, w in want.items():
        tol = 1e-12 if k.startswith("opt_") else 1e-9
        np.testing.assert_allclose(got[k], w, rtol=0, atol=tol * np.abs(w).max(), err_msg=k)


@needs_mpi
def test_sharded_with_one_process_is_the_fast_fit_bitwise(tmp_path):
    a = load(launch(1, "sharded_vs_single_adam", tmp_path)[1])
    b = load(launch(1, "sharded_vs_single_adam", tmp_path, FASTMLP_TEST_REDUCTION="fast")[1])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@needs_mpi
@pytest.mark.parametrize("case", ["sharded", "sharded_mixed"])
def test_sharded_runs_with_three_processes(tmp_path, case):
    if case == "sharded_mixed" and not _core.have_bf16_instructions():
        pytest.skip("this CPU has no AVX512_BF16 (mixed_bfloat16 needs it)")
    r = load(launch(3, case, tmp_path)[1])  # the worker checks every rank has the same bits
    assert np.isfinite(r["params"]).all()
    assert r["history_loss"][-1] < r["history_loss"][0]


@needs_mpi
@pytest.mark.parametrize("transport", ["shared", "mpi"])
def test_sharded_edge_cases_equal_fast_mode(tmp_path, transport):
    # The worker compares sharded with fast mode in each case (empty shards,
    # a rank without rows, sample and class weights) and checks every rank
    # holds the same state, per-batch callbacks included.
    env = {"FASTMLP_SHARDED_TRANSPORT": "mpi"} if transport == "mpi" else {}
    r = load(launch(3, "sharded_edges", tmp_path, **env)[1])
    assert int(r["stopped_epochs"]) == 1  # stopped in the first epoch, on one rank's word


@needs_mpi
@pytest.mark.skipif(not _core.have_bf16_instructions(),
                    reason="this CPU has no AVX512_BF16 (mixed_bfloat16 needs it)")
def test_sharded_mixed_bfloat16_repacks_its_panels(tmp_path):
    r = load(launch(2, "sharded_mixed_panels", tmp_path)[1])  # the worker compares
    assert np.isfinite(r["proba"]).all()


@needs_mpi
def test_sharded_divergence_is_raised_on_every_rank_with_the_state_gathered(tmp_path):
    r = load(launch(2, "sharded_diverges", tmp_path)[1])
    assert len(r["messages"]) == 2
    for msg in r["messages"]:
        assert "diverged at epoch 1, batch 3" in msg, msg
    # The state the worker saved is the same on both ranks (checked there)
    # and finite: the diverging step was not taken.
    assert np.isfinite(r["params"]).all() and np.isfinite(r["opt_0"]).all()


@needs_mpi
def test_fast_mode_runs_with_three_processes(tmp_path):
    r = load(launch(3, "fast", tmp_path)[1])
    assert np.isfinite(r["params"]).all()


@needs_mpi
def test_ranks_that_disagree_raise_on_every_rank(tmp_path):
    msgs = load(launch(2, "mismatch", tmp_path)[1])["messages"]
    assert len(msgs) == 2
    for msg in msgs:
        assert "ranks [1] differ from rank 0" in msg


@needs_mpi
def test_a_failing_rank_aborts_the_job(tmp_path):
    # Inside fit (a memmap's NaN met in one rank's batch): fit aborts the job.
    res, out = launch(2, "fail", tmp_path, check=False)
    assert res.returncode != 0
    assert not Path(out).exists()
    assert "rank 1 of 2 failed in fit; aborting the MPI job" in res.stderr
    assert "X: contains NaN" in res.stderr
    # Before fit's first collective (an array checked up front): the
    # exception leaves the script, and python -m mpi4py aborts the job.
    res, out = launch(2, "fail_upfront", tmp_path, check=False)
    assert res.returncode != 0
    assert not Path(out).exists()
    assert "NaN or infinity" in res.stderr


@needs_mpi
def test_validation_split_converts_the_held_out_rows(tmp_path):
    res, out = launch(2, "validation_split", tmp_path)
    # Batches of 64 rows are one piece of 64: rank 1 idles, and is told so.
    assert "1 of them have no rows to train on" in res.stderr
    r = load(out)
    np.testing.assert_array_equal(r["array_params"], r["memmap_params"])
    np.testing.assert_array_equal(r["array_val_loss"], r["memmap_val_loss"])
    assert np.isfinite(r["array_val_loss"]).all()


@needs_mpi
def test_a_stop_asked_on_one_rank_stops_every_rank(tmp_path):
    r = load(launch(2, "stop_one_rank", tmp_path)[1])
    assert int(r["epochs"]) == 2


@needs_mpi
@pytest.mark.parametrize("case", ["mismatch_callback", "mismatch_estimator"])
def test_different_stopping_rules_raise_instead_of_hanging(tmp_path, case):
    msgs = load(launch(2, case, tmp_path)[1])["messages"]
    assert len(msgs) == 2
    for msg in msgs:
        assert "ranks [1] differ from rank 0" in msg


@needs_mpi
def test_comm_self_trains_what_no_comm_trains(tmp_path):
    r = load(launch(1, "comm_self", tmp_path)[1])
    np.testing.assert_array_equal(r["none"], r["self_"])


@needs_mpi
def test_estimator_takes_comm(tmp_path):
    runs = [load(launch(n, "estimator", tmp_path)[1]) for n in (1, 2)]
    for k in runs[0]:
        np.testing.assert_array_equal(runs[1][k], runs[0][k], err_msg=k)


@needs_mpi
def test_estimator_takes_the_sharded_reduction(tmp_path):
    # Equal on every rank (the worker checks) and close to the reproducible
    # fit of the same estimator: the same model up to float32 rounding, which
    # five epochs of Adam, dropout and batch norm lift to ~1e-3.
    got = load(launch(2, "estimator", tmp_path, FASTMLP_TEST_REDUCTION="sharded")[1])
    want = load(launch(1, "estimator", tmp_path)[1])
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-2, atol=3e-3, err_msg=k)
