"""Coverage-guided fuzz target (atheris, libFuzzer) for the two places where
untrusted bytes and arrays enter fastmlp:

- the model-file reader: fastmlp.io's archive and .npy parsing and
  MLP._from_state's checks, through MLP.__setstate__ (what pickle.loads and,
  after opening the file, fm.load run), fed either whole files (input mode
  0) or JSON descriptions packed with a seed model's intact arrays (mode 2),
  which get past the archive's CRC to the description's checks;
- the array-checking boundary (mode 1): arrays of any dtype, shape, layout and
  values handed to fastmlp.ops, to the model's calls and straight to the
  bindings (fastmlp._core), which must check them themselves.

The contract fuzzed: a corrupt file raises ValueError naming its argument
("state: ..."); a file that loads describes a model that saves back to the
same description and arrays; a bad array raises ValueError or TypeError.
Anything else (another exception, a crash, a sanitizer report when run
against a sanitized build) is a finding. Run through fuzz/run.sh.
"""

from __future__ import annotations

import io
import sys
import warnings

import atheris

# Instrument the Python that parses untrusted input, so libFuzzer sees its
# branches: fastmlp itself and the archive reader.
with atheris.instrument_imports(include=["fastmlp", "zipfile"]):
    import zipfile

    import numpy as np

    import fastmlp as fm
    from fastmlp import _core

DTYPES = [np.float32, np.float64, np.int32, np.int64, np.float16, np.complex64, np.bool_,
          np.uint8]
ALLOWED = (ValueError, TypeError)


def _model_bytes(data: bytes):
    m = fm.MLP.__new__(fm.MLP)
    try:
        m.__setstate__({"npz": data})
    except ValueError as e:
        if not str(e).startswith("state: "):
            raise AssertionError(f"ValueError not naming 'state': {e}") from e
        return
    # It loaded: it must describe itself the same way again.
    meta, arrays = m._state()
    again = fm.MLP._from_state(meta, arrays)
    meta2, arrays2 = again._state()
    assert meta2 == meta, (meta, meta2)
    for k, a in arrays.items():
        assert arrays2[k].tobytes() == a.tobytes(), k


def _array(fdp):
    dtype = DTYPES[fdp.ConsumeIntInRange(0, len(DTYPES) - 1)]
    ndim = fdp.ConsumeIntInRange(0, 3)
    shape = tuple(fdp.ConsumeIntInRange(0, 9) for _ in range(ndim))
    n = int(np.prod(shape, dtype=np.int64))
    raw = fdp.ConsumeBytes(n * np.dtype(dtype).itemsize)
    raw = raw + bytes(n * np.dtype(dtype).itemsize - len(raw))
    a = np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
    layout = fdp.ConsumeIntInRange(0, 3)
    if layout == 1:
        a = np.asfortranarray(a)
    elif layout == 2 and ndim:
        # A strided view of the same values.
        big = np.zeros(tuple(2 * s for s in shape), dtype=dtype)
        big[tuple(slice(None, None, 2) for _ in shape)] = a
        a = big[tuple(slice(None, None, 2) for _ in shape)]
    elif layout == 3 and ndim:
        a = a[::-1]
    return a


_MODELS = {}


def _model(loss):
    if loss not in _MODELS:
        _MODELS[loss] = fm.MLP([3, 4, 2], loss=loss, seed=1).compile("adam")
    return _MODELS[loss]


def _arrays(fdp):
    a, b = _array(fdp), _array(fdp)
    which = fdp.ConsumeIntInRange(0, 7)
    flag1, flag2 = fdp.ConsumeBool(), fdp.ConsumeBool()
    if which == 0:
        fm.ops.matmul(a, b, trans_a=flag1, trans_b=flag2)
    elif which == 1:
        # Straight to the binding: only its own checks stand in the way.
        _core.matmul(a, b, flag1, flag2, None, flag2)
    elif which == 2:
        fm.ops.dense_forward(a, b, _array(fdp), "tanh")
    elif which == 3:
        fm.ops.activation_forward(a, "gelu")
    elif which == 4:
        fm.ops.loss_forward_backward("cross_entropy" if flag1 else "mse", a, a, b)
    elif which == 5:
        _model("mse").forward(a)
    elif which == 6:
        _model("cross_entropy").loss(a, b)
    else:
        m = _model("mse")
        try:
            m.train_step(a, b)
        except FloatingPointError:
            # The documented answer to a step whose loss or gradient is not
            # finite; the parameters must be the last finite ones.
            pass
        assert all(np.isfinite(layer.W).all() for layer in m.layers)


_ARRAYS = []


def _seed_arrays(i):
    """The arrays of seed model i, for a fuzzed description to be checked against."""
    if not _ARRAYS:
        _ARRAYS.extend(m._state()[1] for m in _seed_models())
    return _ARRAYS[i]


def _description(data: bytes):
    """The bytes as the JSON description of a file whose archive and arrays
    are intact: a flipped byte of a real file stops at the CRC, this reaches
    MLP._from_state."""
    try:
        text = data[1:].decode("utf-8")
    except UnicodeDecodeError:
        return
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        f = io.BytesIO()
        np.lib.format.write_array(f, np.array(text))
        zf.writestr("meta.npy", f.getvalue())
        for key, a in _seed_arrays(data[0] % 3).items():
            f = io.BytesIO()
            np.lib.format.write_array(f, a)
            zf.writestr(key + ".npy", f.getvalue())
    _model_bytes(buf.getvalue())


def TestOneInput(data: bytes):
    if len(data) < 2:
        return
    # A warning on the way to an answer is a finding too: under -W error (as
    # the test suite runs) it replaces the ValueError the contract promises,
    # and a ComplexWarning means a value was silently mis-read.
    warnings.simplefilter("error")
    mode = data[0] % 3
    if mode == 0:
        _model_bytes(data[1:])
    elif mode == 2:
        _description(data[1:])
    else:
        fdp = atheris.FuzzedDataProvider(data[1:])
        try:
            _arrays(fdp)
        except ALLOWED:
            pass


def _seed_models():
    """Three small trained models with optimizer and schedule state."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    models = [
        fm.MLP([3, fm.Dense(4, batch_norm=True), fm.Dense(3, dropout=0.1), 2], seed=1)
        .compile(fm.optim.Adam(1e-2), l2=1e-3, lr_schedule=fm.optim.StepLR(2)),
        fm.MLP([3, 5, 2], loss="mse", dtype="float64", seed=2)
        .compile(fm.optim.SGD(0.1, momentum=0.9), clip_norm=1.0),
        fm.MLP([3, 2], loss="binary_cross_entropy", dtype="float32", seed=3)
        .compile(fm.optim.RMSprop(centered=True)),
    ]
    targets = [rng.integers(0, 2, 20), rng.standard_normal((20, 2)),
               (rng.random((20, 2)) < 0.5).astype(float)]
    for m, y in zip(models, targets):
        m.fit(X, y, epochs=1, batch_size=8, verbose=0)
    return models


def _write_seeds(folder):
    """Starting inputs: valid model files (mode 0: the reader), their
    descriptions (mode 2, the byte after the mode choosing the arrays) and a
    few array inputs (mode 1)."""
    import json
    import os

    rng = np.random.default_rng(0)
    for i, m in enumerate(_seed_models()):
        with open(os.path.join(folder, f"model{i}"), "wb") as f:
            f.write(b"\x00" + m.__getstate__()["npz"])
        meta = {"format": "fastmlp-model", "version": 1, **m._state()[0]}
        with open(os.path.join(folder, f"description{i}"), "wb") as f:
            f.write(b"\x02" + bytes([i]) + json.dumps(meta).encode())
    for i in range(8):
        with open(os.path.join(folder, f"arrays{i}"), "wb") as f:
            f.write(bytes([1]) + rng.bytes(64) + bytes([i]) + rng.bytes(64))


def main():
    if sys.argv[1:2] == ["--write-seeds"]:
        _write_seeds(sys.argv[2])
        return
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
