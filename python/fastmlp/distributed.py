"""Data-parallel training over MPI: ``model.fit(X, y, comm=comm)``.

Every process (rank) runs the same ``fit`` with the same arguments; each
global batch of ``batch_size`` rows is split over the ranks, each rank runs
the forward and backward pass on its rows, the gradients are summed across
the ranks, and every rank takes the same optimizer step. The C++ core knows
nothing of MPI: it computes a rank's share of a step
(``Network.forward_backward_pieces``) and calls back into this module
for the few sums that batch normalization needs in the middle of a pass;
the collectives are mpi4py's, on zero-copy views of the core's flat
buffers.

The result does not depend on how many processes run it:

* the shuffling permutation of each epoch comes from (seed, epoch), the same
  on every rank;
* the loss is the global batch's mean (its denominator is the global one),
  so no learning-rate rescaling is needed;
* batch normalization uses the global batch's statistics (two sums per
  layer forward, one backward), dropout the masks of the global rows;
* history, validation, schedules and early stopping see the same numbers
  on every rank, so every rank takes the same branch; only rank 0 prints.

Two reductions:

``reduction="reproducible"`` (default)
    Each global batch is cut into pieces of ``piece_rows`` rows
    (:class:`Reproducible`; 64 by default), whatever the number of
    processes. Each piece's gradient (and batch-norm sums) is computed on
    its own, and the pieces are added in a binary tree over the piece
    indices, the same tree for any number of processes (floating-point
    addition is commutative, so which rank adds a node does not matter;
    its operands do). The parameters after fit are bitwise identical on
    every rank and for 1, 2, 3 or any number of processes. Ranks beyond the
    number of pieces of a batch have no rows to work on in it.
``reduction="fast"``
    Each rank's rows are one piece; one in-place ``Allreduce`` of the flat
    gradient buffer per step (MPI's order of addition). Identical on every
    rank, and equal to a single-process fit up to rounding.
``reduction="sharded"``
    The rows as in fast mode; the flat buffers are cut into one shard per
    rank, and each rank sums the gradient of its shard only, takes the
    optimizer step on it (its share of the penalties, norms and clipping is
    summed across the ranks first, so every rank takes the same decision),
    and hands its new parameters to the others: a reduce-scatter, a sharded
    step and an all-gather, the bytes of one all-reduce but a 1/N share of
    the optimizer's work. Where every rank is on one machine, the shards
    travel through an MPI shared-memory window (one copy in, one out);
    otherwise through ``Reduce_scatter`` and ``Allgatherv`` (also where
    /dev/shm lacks room for the window, or with the environment variable
    FASTMLP_SHARDED_TRANSPORT=mpi on rank 0). The optimizer state of the
    other shards is gathered at the end of every epoch, before any
    per-batch callback and when a step diverges, so callbacks and the
    fitted model see all of it.
    Identical on every rank, equal to a single-process fit up to rounding.

Launch with ``mpiexec -n N python -m mpi4py script.py``: with ``-m mpi4py``
an uncaught exception on one rank aborts the whole job instead of leaving
the others waiting in a collective. Inside fit, an error that only some
ranks can see (a bad value in one rank's rows, an interrupt) calls
``comm.Abort`` for the same reason; errors every rank sees alike (a
mismatch of the arguments, a diverging loss) are raised on every rank.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import traceback
import warnings
from types import SimpleNamespace

import numpy as np

from . import _core

__all__ = ["Reproducible", "REDUCTIONS", "Diverged"]

REDUCTIONS = ("reproducible", "fast", "sharded")


class Reproducible:
    """``reduction=`` value: the reproducible reduction with pieces of
    ``piece_rows`` rows (``"reproducible"`` is ``Reproducible(64)``).

    The result depends on piece_rows, never on the number of processes.

    Parameters
    ----------
    piece_rows : int, default 64
        Rows per piece of each global batch (the last piece of a batch may
        be shorter). Smaller pieces let more processes share a batch (a
        batch has ceil(batch_size / piece_rows) pieces to hand out); larger
        ones cost less per step (each piece a rank holds beyond its first
        costs one more gradient buffer, the size of the parameters, and one
        addition of it).
    """

    def __init__(self, piece_rows: int = 64):
        if isinstance(piece_rows, bool) or not isinstance(piece_rows, (int, np.integer)) \
                or piece_rows < 1:
            raise ValueError(f"piece_rows: expected a positive integer, got {piece_rows!r}")
        self.piece_rows = int(piece_rows)

    def __repr__(self):
        return f"Reproducible(piece_rows={self.piece_rows})"

    def __eq__(self, other):
        return isinstance(other, Reproducible) and other.piece_rows == self.piece_rows

    def __hash__(self):
        return hash(("Reproducible", self.piece_rows))


class Diverged(FloatingPointError):
    """A data-parallel fit diverged. Every rank reduces to the same gradient
    and takes the same check, so every rank raises it: it is the one error
    a data-parallel fit raises instead of aborting the job."""


def describe(obj):
    """A callback (or any object) as its class and public attributes, for
    the ranks' agreement hash."""
    attrs = {k: repr(v) for k, v in sorted(vars(obj).items()) if not k.startswith("_")}
    return [type(obj).__name__, attrs]


def check_reduction(reduction):
    """(mode, piece_rows) of a ``reduction=`` argument."""
    if isinstance(reduction, Reproducible):
        return "reproducible", reduction.piece_rows
    if isinstance(reduction, str) and reduction in REDUCTIONS:
        return reduction, 64 if reduction == "reproducible" else None
    raise ValueError(
        f"reduction: expected 'reproducible', 'fast', 'sharded' or "
        f"fastmlp.distributed.Reproducible(...), "
        f"got {reduction!r}"
    )


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:  # pragma: no cover - exercised where mpi4py is absent
        raise ImportError(
            "comm: data-parallel fit needs mpi4py and an MPI library; install them with "
            "pip install 'fastmlp[mpi]' (mpi4py and the mpich wheel) and launch with "
            "mpiexec -n N python -m mpi4py script.py"
        ) from e
    return MPI


def check_comm(comm):
    """The mpi4py intracommunicator `comm`, checked."""
    MPI = _mpi()
    if not isinstance(comm, MPI.Intracomm):
        raise TypeError(
            f"comm: expected an mpi4py intracommunicator (e.g. MPI.COMM_WORLD), got "
            f"{type(comm).__name__}"
        )
    if comm == MPI.COMM_NULL:
        raise ValueError("comm: MPI.COMM_NULL cannot train")
    return comm


def _digest(obj):
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class _Plan:
    """Which rows of a global batch of nb rows this rank holds, in which pieces."""

    def __init__(self, nb, size, rank, piece_rows):
        if piece_rows is None:  # fast, sharded: one piece per rank, the rows split evenly
            lo, hi = nb * rank // size, nb * (rank + 1) // size
            self.owner = None
            self.first_piece = rank
            self.bounds = [0, hi - lo] if hi > lo else [0]
            self.counts = [1 if nb * (r + 1) // size > nb * r // size else 0
                           for r in range(size)]
        else:
            k = -(-nb // piece_rows)
            p0, p1 = k * rank // size, k * (rank + 1) // size
            lo, hi = min(p0 * piece_rows, nb), min(p1 * piece_rows, nb)
            self.owner = np.empty(k, dtype=np.int64)
            for r in range(size):
                self.owner[k * r // size:k * (r + 1) // size] = r
            self.first_piece = p0
            self.bounds = [min(q * piece_rows, nb) - lo for q in range(p0, p1)] + [hi - lo]
            self.counts = [k * (r + 1) // size - k * r // size for r in range(size)]
        self.lo, self.hi = lo, hi
        self.pieces = len(self.bounds) - 1
        # The tree's nodes within this rank's pieces are added by the core,
        # layer by layer as their gradients come (Network.forward_backward_pieces).
        self.fold = {} if self.owner is None else {
            "first_piece": self.first_piece, "total_pieces": len(self.owner)}


class _Reducer:
    """The sums of one process group: gradients, batch-norm sums, losses."""

    def __init__(self, comm, mode, dtype):
        MPI = _mpi()
        self.MPI = MPI
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self.mode = mode
        self.mpi_dtype = MPI.FLOAT if dtype == np.float32 else MPI.DOUBLE
        self._buf = None  # receive buffer of the reproducible tree

    # -- small sums (batch norm, losses): gather every piece, add in order -----
    def ordered_sum(self, partials, plan):
        """Sum over all pieces of the global batch of `partials` (this
        rank's pieces x width), the same bits for any number of ranks."""
        width = partials.shape[1]
        if self.mode == "fast":
            local = np.zeros(width)
            for row in partials:
                local += row
            self.comm.Allreduce(self.MPI.IN_PLACE, local, op=self.MPI.SUM)
            return local
        counts = [c * width for c in plan.counts]
        allp = np.empty((sum(plan.counts), width))
        self.comm.Allgatherv(np.ascontiguousarray(partials),
                             [allp, counts, None, self.MPI.DOUBLE])
        total = np.zeros(width)
        for row in allp:  # piece order: the same additions for any process count
            total += row
        return total

    def batch_norm_hook(self, plan):
        def reduce(partials, out):
            out[...] = self.ordered_sum(partials, plan)
        return reduce

    # -- the gradient ----------------------------------------------------------
    def gradients(self, net, plan):
        grads = net.grads_flat()
        if self.mode == "fast":
            if plan.pieces == 0:
                grads[...] = 0
            self.comm.Allreduce(self.MPI.IN_PLACE, [grads, self.mpi_dtype], op=self.MPI.SUM)
            return
        # Piece q's gradient: grads for this rank's first piece, the piece
        # buffer after it. A binary tree over the piece indices [0, k), the
        # same for any number of ranks. A node whose halves lie on two ranks
        # is formed on both: each rank adds one half of the buffer (the
        # other's half of its operand sent over, a + b and b + a being the
        # same bits) and sends its half of the sum back, the bytes of one
        # all-reduce. The root ends on owner[0] and owner[m] of the top split;
        # a broadcast reaches the other ranks only where there are any.
        extra = net.piece_grads() if plan.pieces > 1 else None
        first = plan.first_piece
        owner = plan.owner
        k = len(owner)
        size = grads.shape[0]
        half = size // 2
        if self._buf is None or self._buf.shape != grads.shape or self._buf.dtype != grads.dtype:
            self._buf = np.empty_like(grads)  # kept: a new one each step costs page faults
        buf = self._buf
        dt = self.mpi_dtype

        def local(q):
            return grads if q == first else extra[q - first - 1]

        def node(a, b):
            """The sum of pieces [a, b) into local(a) on owner[a] (and into
            local(m) on owner[m] where the halves lie on two ranks)."""
            if b - a == 1:
                return
            m = (a + b) // 2
            node(a, m)
            node(m, b)
            left, right = int(owner[a]), int(owner[m])
            if left == right:
                # Wholly within this rank's pieces: the core has added it.
                if left == self.rank and not (first <= a and b <= first + plan.pieces):
                    np.add(local(a), local(m), out=local(a))
                return
            if self.rank == left:
                x, other, mine, theirs = local(a), right, slice(0, half), slice(half, size)
            elif self.rank == right:
                x, other, mine, theirs = local(m), left, slice(half, size), slice(0, half)
            else:
                return
            self.comm.Sendrecv([x[theirs], dt], dest=other, sendtag=7,
                               recvbuf=[buf[mine], dt], source=other, recvtag=7)
            np.add(x[mine], buf[mine], out=x[mine])
            self.comm.Sendrecv([x[mine], dt], dest=other, sendtag=8,
                               recvbuf=[x[theirs], dt], source=other, recvtag=8)

        node(0, k)
        top = (k // 2) if k > 1 else 0
        holders = {int(owner[0]), int(owner[top])}
        if self.rank == int(owner[top]) and self.rank != int(owner[0]) and top != first:
            grads[...] = local(top)
        if len(holders) < self.size:
            self.comm.Bcast([grads, dt], root=int(owner[0]))


class _Shards:
    """reduction="sharded": the flat buffers cut into one shard per rank
    (64-byte aligned), each rank the owner of one; the shards' sums and new
    values travel through a shared-memory window where all the ranks share
    a machine, through MPI collectives otherwise."""

    def __init__(self, comm, MPI, net, dtype, mpi_dtype):
        self.comm, self.MPI, self.dt = comm, MPI, mpi_dtype
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        P = int(net.grads_flat().shape[0])
        align = 64 // np.dtype(dtype).itemsize
        self.bounds = [(P * r // self.size) // align * align for r in range(self.size)] + [P]
        self.lo, self.hi = self.bounds[self.rank], self.bounds[self.rank + 1]
        self.counts = [b - a for a, b in zip(self.bounds, self.bounds[1:])]
        self.displs = self.bounds[:-1]
        self.node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        item = np.dtype(dtype).itemsize
        stride = -(-P // align) * align  # each slot 64-byte aligned in the window
        need = (self.size + 1) * stride * item
        # Rank 0 decides for all (a rank deciding alone could leave the others
        # waiting in a window allocation): the window when every rank shares
        # this machine and its shared memory has room (a container's small
        # /dev/shm would fail on first touch, not at allocation), unless
        # FASTMLP_SHARDED_TRANSPORT=mpi asks for the collectives.
        shared = None
        if self.rank == 0:
            shared = (self.node.Get_size() == self.size
                      and os.environ.get("FASTMLP_SHARDED_TRANSPORT", "") != "mpi"
                      and need <= 0.8 * _shm_free_bytes())
        self.shared = bool(comm.bcast(shared, root=0))
        self.wins = []
        if self.shared:
            # Every rank's slot of the gradient (the other shards' values),
            # and one buffer of new values; both allocated by the first rank
            # of the node, seen by all.
            first = self.node.Get_rank() == 0
            slots = MPI.Win.Allocate_shared(self.size * stride * item if first else 0, item,
                                            comm=self.node)
            common = MPI.Win.Allocate_shared(stride * item if first else 0, item,
                                             comm=self.node)
            self.wins = [slots, common]
            # MPI's shared-memory model: loads and stores of one rank become
            # visible to another after a memory barrier (Win.Sync, inside a
            # passive-target epoch) on both sides of a process
            # synchronization (the node barrier); see _sync.
            for w in self.wins:
                w.Lock_all(MPI.MODE_NOCHECK)
            buf, _ = slots.Shared_query(0)
            self.slots = np.frombuffer(buf, dtype=dtype,
                                       count=self.size * stride).reshape(self.size, stride)[:, :P]
            buf, _ = common.Shared_query(0)
            self.common = np.frombuffer(buf, dtype=dtype, count=P)
        else:
            self.scratch = np.empty(self.hi - self.lo, dtype=dtype)

    def reduce_scatter(self, grads):
        """The global gradient of this rank's shard, into grads[lo:hi]."""
        lo, hi = self.lo, self.hi
        if not self.shared:
            self.comm.Reduce_scatter([grads, self.dt], [self.scratch, self.dt], self.counts,
                                     op=self.MPI.SUM)
            grads[lo:hi] = self.scratch
            return
        mine = self.slots[self.rank]
        mine[:lo] = grads[:lo]
        mine[hi:] = grads[hi:]
        # Every slot written before any is read; the next step's writes come
        # after the next barrier, when every rank has read this step's.
        self._sync(self.wins[0])
        for r in range(self.size):
            if r != self.rank:
                np.add(grads[lo:hi], self.slots[r, lo:hi], out=grads[lo:hi])

    def all_gather(self, a, again=True):
        """Every shard of a (the parameters or a state buffer) from its owner.
        again=False: the caller writes the window next only after another
        barrier (the parameters of a step: the next step's reduce_scatter)."""
        lo, hi = self.lo, self.hi
        if not self.shared:
            self.comm.Allgatherv(self.MPI.IN_PLACE, [a, (self.counts, self.displs), self.dt])
            return
        self.common[lo:hi] = a[lo:hi]
        self._sync(self.wins[1])
        a[:lo] = self.common[:lo]
        a[hi:] = self.common[hi:]
        if again:  # read by all before the window is written again
            self._sync(self.wins[1])

    def barrier(self):
        """Every rank's reads of the windows done before any writes after."""
        if self.shared:
            self._sync(self.wins[1])

    def _sync(self, win):
        """A node barrier with the memory barriers that order this rank's
        stores to the window before it and the other ranks' loads after it."""
        win.Sync()
        self.node.Barrier()
        win.Sync()

    def sum(self, partials, out):
        """Partial sums of every rank, added in rank order: the same bits on every rank."""
        everyone = np.empty((self.size, partials.shape[0]))
        self.comm.Allgather(np.ascontiguousarray(partials, dtype=np.float64), everyone)
        total = np.zeros(partials.shape[0])
        for row in everyone:
            total += row
        out[...] = total

    def close(self):
        self.slots = self.common = None  # no view outlives the memory
        for w in self.wins:
            w.Unlock_all()
            w.Free()
        self.wins = []
        self.node.Free()


def _shm_free_bytes():
    """Free bytes of the shared-memory file system MPI's windows live in (inf
    where there is none to ask)."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return float("inf")
    return st.f_bavail * st.f_frsize


def _gather(a, rows):
    """a[rows] as a C-contiguous copy: for a np.memmap only those rows are read."""
    return np.ascontiguousarray(a[rows])


def _den(model, y, cw, nb):
    """The loss denominator of a global batch (losses.h): rows for
    cross-entropy (the class weights' sum over the rows with class ids and
    class weights), rows x outputs otherwise."""
    if model.loss_name == "cross_entropy":
        if cw is not None and y.ndim == 1:
            den = float(np.add.reduce(cw[y].astype(np.float64)))
            return den if den > 0 else float("inf")  # every row weighs 0: no gradient
        return float(nb)
    return float(nb) * float(model._sizes[-1])


def check_lazy_X(X, n_features, name="X"):
    """X as an array whose rows are converted a batch at a time (a
    np.memmap stays one: nothing is read here)."""
    from ._validation import is_sparse

    if is_sparse(X):
        raise TypeError(f"{name}: a data-parallel fit takes a dense array or np.memmap, "
                        "not a sparse matrix")
    if not isinstance(X, np.ndarray):
        X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"{name}: expected a non-empty 2-D array (n_samples, n_features), "
                         f"got shape {X.shape}")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name}: expected {n_features} features, got {X.shape[1]}")
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {X.dtype}")
    return X


class Trainer:
    """One data-parallel fit: the model's epochs, step by step, over comm."""

    def __init__(self, model, comm, reduction):
        self.model = model
        self.comm = check_comm(comm)
        self.mode, self.piece_rows = check_reduction(reduction)
        self.reducer = _Reducer(self.comm, self.mode, model.dtype)
        self.rank = self.reducer.rank
        self.size = self.reducer.size
        self._plans = {}  # batch rows -> _Plan
        self.shards = None  # reduction="sharded": made once the ranks agree

    # -- the start: the same model, arguments and data on every rank ----------
    def agree(self, fit_args, data):
        model = self.model
        meta = model._meta()
        shapes = {name: None if a is None else [list(np.shape(a)), str(np.asarray(a[:0]).dtype)]
                  for name, a in (("X", data.X), ("y", data.y), ("sample_weight", data.sw),
                                  ("X_val", data.Xv), ("y_val", data.yv))}
        cw = None if data.cw is None else np.asarray(data.cw).tolist()
        mine = _digest({"model": meta, "fit": fit_args, "data": shapes, "class_weight": cw,
                        "reduction": [self.mode, self.piece_rows]})
        everyone = self.comm.allgather(mine)
        if len(set(everyone)) > 1:
            differ = [r for r, d in enumerate(everyone) if d != everyone[0]]
            raise ValueError(
                f"comm: the ranks called fit with different models, arguments or data shapes "
                f"(ranks {differ} differ from rank 0); every rank must call fit alike"
            )
        batch = min(int(fit_args.get("batch_size", 1)), int(data.X.shape[0]))
        if self.piece_rows is not None and self.rank == 0:
            pieces = -(-batch // self.piece_rows)
            if pieces < self.size:
                warnings.warn(
                    f"reduction: a batch of {batch} rows has {pieces} piece(s) of "
                    f"{self.piece_rows} rows for {self.size} processes, so {self.size - pieces} "
                    "of them have no rows to train on; give a larger batch_size or "
                    "fastmlp.distributed.Reproducible(piece_rows=...) with smaller pieces "
                    "(the result depends on piece_rows, never on the number of processes)",
                    RuntimeWarning, stacklevel=4)
        # The same numbers everywhere: rank 0's parameters, running statistics
        # and optimizer state.
        net = model._net
        mpi_dtype = self.reducer.mpi_dtype
        views = [net.params_flat(), *model._running_stats().values(), *net.optimizer_state()]
        for v in views:
            self.comm.Bcast([v, mpi_dtype], root=0)
        del views  # drops the weight handles: the bf16 panels are repacked
        if self.mode == "sharded":
            self.shards = _Shards(self.comm, self.reducer.MPI, net, model.dtype, mpi_dtype)

    def close(self):
        """Frees the shared-memory windows (collective: every rank calls it)."""
        if self.shards is not None:
            self.shards.close()
            self.shards = None

    def gather_state(self):
        """Sharded: every rank gets the optimizer state of every shard (each
        has stepped only its own). Collective."""
        if self.shards is not None:
            # The last step's all-gather left the window unguarded (again=
            # False): every rank must have read its parameters before the
            # state is written there.
            self.shards.barrier()
            for v in self.model._net.optimizer_state():
                self.shards.all_gather(v)

    # -- one epoch --------------------------------------------------------------
    def epoch(self, data, batch_size, shuffle, shuffle_seed, callbacks):
        """One epoch (model._run_epochs' epoch function). A diverging loss
        is raised on every rank alike; any other error may be this rank's
        alone and aborts the job."""
        try:
            out = self._epoch(data, batch_size, shuffle, shuffle_seed, callbacks)
            self.gather_state()  # before the callbacks and after the last epoch
            return out
        except Diverged:
            self.gather_state()  # every rank is here: a collective is safe
            raise
        except BaseException as e:  # noqa: BLE001
            self.abort(e)
            raise

    def _epoch(self, data, batch_size, shuffle, shuffle_seed, callbacks):
        model = self.model
        net = model._net
        n = data.X.shape[0]
        perm = _core.permutation(n, shuffle_seed, model._epochs_done) if shuffle else None
        net.reset_unit_activity()
        L = net.num_layers
        r = SimpleNamespace(loss_sum=0.0, rows=0, batches=0, correct=0.0, predictions=0.0,
                            grad_norm_sum=[0.0] * L, distributed=True)
        every = [c.every_n_batches for c in callbacks if c.every_n_batches]
        stop = False
        for start in range(0, n, batch_size):
            nb = min(batch_size, n - start)
            idx = perm[start:start + nb] if perm is not None else np.arange(start, start + nb)
            plan = self._plan(nb)
            rows = idx[plan.lo:plan.hi]
            # A memmap reads its rows in file order; the batch keeps the
            # permutation's order.
            X = np.ascontiguousarray(_gather(data.X, rows), dtype=model.dtype)
            y = _gather(data.y, rows)
            sw = None if data.sw is None else _gather(data.sw, rows)
            den = _den(model, data.y[idx], data.cw, nb)
            with model._lock:
                out = net.forward_backward_pieces(
                    X, y, sw, data.cw, int(plan.lo), int(nb), den, plan.bounds,
                    self.reducer.batch_norm_hook(plan), **plan.fold)
                if self.shards is None:
                    self.reducer.gradients(net, plan)
                loss = float(self.reducer.ordered_sum(out["losses"].reshape(-1, 1), plan)[0])
                if self.shards is None:
                    s = net.finish_step(loss, int(nb))
                else:
                    s = self._sharded_step(net, plan, loss, nb)
            if not s.ok:
                from .model import _REMEDIES
                raise Diverged(
                    f"fit: training diverged at epoch {model._epochs_done + 1}, batch "
                    f"{start // batch_size + 1}: {model._divergence(s.loss, s.bad_layer)} The "
                    f"parameters are those before that batch. {_REMEDIES}"
                )
            r.loss_sum += s.loss * nb
            r.rows += nb
            r.batches += 1
            r.correct += out["correct"]
            r.predictions += out["predictions"]
            for i, g in enumerate(net.grad_norms()):
                r.grad_norm_sum[i] += g
            batch_no = r.batches
            if every and start + nb < n:
                if any(cb.every_n_batches and batch_no % cb.every_n_batches == 0
                       for cb in callbacks):
                    # A callback may save the model: every shard's optimizer
                    # state first (the same decision on every rank, whose
                    # callbacks agree).
                    self.gather_state()
                logs = {"loss": r.loss_sum / r.rows}
                for cb in callbacks:
                    if cb.every_n_batches and batch_no % cb.every_n_batches == 0:
                        stop = bool(cb.on_batch_end(batch_no, logs)) or stop
                stop = self.any(stop)
                if stop:
                    break
        counts = np.array([r.correct, r.predictions])
        self.comm.Allreduce(self.reducer.MPI.IN_PLACE, counts, op=self.reducer.MPI.SUM)
        r.correct, r.predictions = float(counts[0]), float(counts[1])
        return r, stop

    def _sharded_step(self, net, plan, loss, nb):
        """Phases 4-5 of reduction="sharded": this rank's shard of the
        gradient summed, stepped, and every shard's new values gathered."""
        sh = self.shards
        grads = net.grads_flat()
        if plan.pieces == 0:  # no rows here: nothing to add
            grads[...] = 0
        sh.reduce_scatter(grads)
        del grads
        s = net.finish_shard(loss, int(nb), sh.lo, sh.hi, sh.sum)
        if s.ok:  # every rank decides alike (the sums are the same)
            params = net.params_flat()
            sh.all_gather(params, again=False)
            del params  # drops the weight handle: the bf16 panels are repacked
        return s

    def _plan(self, nb):
        """The plan of a batch of nb rows, made once per batch size (an epoch
        has at most two) instead of once per batch."""
        if nb not in self._plans:
            self._plans[nb] = _Plan(nb, self.size, self.rank, self.piece_rows)
        return self._plans[nb]

    def any(self, flag):
        """Whether any rank says so: a stop asked on one rank stops them all
        (a stop on one rank alone would leave the others waiting)."""
        return bool(self.comm.allreduce(bool(flag), op=self.reducer.MPI.LOR))

    def abort(self, exc):
        """An error only this rank may have seen: end the whole job rather
        than leave the other ranks waiting in a collective."""
        sys.stderr.write(f"fastmlp: rank {self.rank} of {self.size} failed in fit; "
                         "aborting the MPI job\n")
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        sys.stderr.flush()
        self.comm.Abort(1)
