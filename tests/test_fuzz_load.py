"""Corrupted model files: fm.load and pickle.loads either raise ValueError
naming the argument ("path: ...", "state: ...") or return exactly the model
that was saved (or, for an edit to another valid value, exactly the model the
edited file describes). Never another exception, never a crash, never a
model that differs from what the file says.

Byte flips: the archive's CRC-32 covers every byte of every entry, and the
directory's offsets and sizes are checked against the entries, so a flip
either hits a byte that nothing reads (a timestamp, a version field) and
the model comes back bitwise, or it is refused. Truncation always removes
the archive's end record. Field edits rewrite the JSON description or an
array (dtype, shape, values, the .npy header's declared shape) and keep the
archive itself intact, so they reach the checks of MLP._from_state.
"""

from __future__ import annotations

import io as _io
import json
import pickle
import struct
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmlp as fm
from fastmlp import io as fio


def _trained(kind):
    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 5))
    if kind == "classifier":
        y = rng.integers(0, 3, 40)
        m = fm.MLP([5, fm.Dense(7, batch_norm=True), fm.Dense(4, dropout=0.2), 3], seed=3)
        m.compile(fm.optim.Adam(1e-2), l2=1e-3,
                  lr_schedule=fm.optim.ReduceLROnPlateau(patience=1))
    else:
        y = rng.standard_normal((40, 2))
        m = fm.MLP([5, 6, 2], loss="mse", dtype="float64", seed=4)
        m.compile(fm.optim.SGD(0.05, momentum=0.9), clip_norm=1.0,
                  lr_schedule=fm.optim.StepLR(2))
    m.fit(X, y, epochs=2, batch_size=16, verbose=0)
    return m


KINDS = ("classifier", "regressor")


@pytest.fixture(scope="module")
def saved():
    """{kind: (model, meta, arrays, file bytes)}."""
    out = {}
    for kind in KINDS:
        m = _trained(kind)
        meta, arrays = m._state()
        out[kind] = (m, meta, arrays, fio.to_bytes(meta, arrays))
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz_load")


def _normal(meta):
    """The description as JSON gives it back (tuples become lists), without
    the writer's version string, which load ignores."""
    meta = json.loads(json.dumps(meta))
    meta.pop("fastmlp", None)
    return meta


def _diff(a, b, prefix=()):
    """The paths where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return [p for k in a for p in _diff(a[k], b[k], (*prefix, k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [p for i, (x, y) in enumerate(zip(a, b)) for p in _diff(x, y, (*prefix, i))]
    return [] if a == b else [prefix]


def _assert_describes(model, meta, arrays, defaulted=()):
    """model is exactly what (meta, arrays) describe; only the description's
    entries at the paths `defaulted` (edited to mean "the default") may come
    back resolved."""
    got_meta, got_arrays = model._state()
    want = _normal({"format": fio.FORMAT, "version": fio.VERSION, **meta})
    got = _normal({"format": fio.FORMAT, "version": fio.VERSION, **got_meta})
    assert [p for p in _diff(got, want) if p not in defaulted] == [], (got, want)
    assert sorted(got_arrays) == sorted(arrays)
    for k, a in arrays.items():
        assert got_arrays[k].dtype == a.dtype and got_arrays[k].shape == a.shape, k
        assert got_arrays[k].tobytes() == np.ascontiguousarray(a).tobytes(), k


def _load_file(workdir, blob):
    path = workdir / "m.npz"
    path.write_bytes(blob)
    return fm.load(path)


def _outcome(load, blob, name):
    """The loaded model, or None after a ValueError that names `name`."""
    try:
        return load(blob)
    except ValueError as e:
        assert str(e).startswith(f"{name}: "), str(e)
        return None


# ---------------------------------------------------------------------------
# byte flips and truncations
# ---------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(kind=st.sampled_from(KINDS), where=st.floats(0, 1, exclude_max=True),
       xor=st.integers(1, 255))
def test_flipped_byte_is_refused_or_harmless(saved, workdir, kind, where, xor):
    _, meta, arrays, blob = saved[kind]
    bad = bytearray(blob)
    bad[int(where * len(bad))] ^= xor
    model = _outcome(lambda b: _load_file(workdir, b), bytes(bad), "path")
    if model is not None:
        _assert_describes(model, meta, arrays)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(KINDS), where=st.floats(0, 1, exclude_max=True))
def test_truncated_file_is_refused(saved, workdir, kind, where):
    blob = saved[kind][3]
    with pytest.raises(ValueError, match="^path: "):
        _load_file(workdir, blob[: int(where * len(blob))])


def test_flipped_byte_reaches_load_as_value_error_not_bad_zip(saved, workdir):
    # The regression: a flip in the end record escaped as zipfile.BadZipFile.
    blob = bytearray(saved["classifier"][3])
    blob[-20] ^= 0xFF
    with pytest.raises(ValueError, match="^path: not a readable fastmlp model file"):
        _load_file(workdir, bytes(blob))


def test_valid_file_loads_bitwise(saved, workdir):
    for kind in KINDS:
        _, meta, arrays, blob = saved[kind]
        _assert_describes(_load_file(workdir, blob), meta, arrays)


@settings(max_examples=80, deadline=None)
@given(kind=st.sampled_from(KINDS), where=st.floats(0, 1, exclude_max=True),
       xor=st.integers(1, 255))
def test_flipped_byte_in_a_pickle_is_refused_or_harmless(saved, kind, where, xor):
    model, meta, arrays, _ = saved[kind]
    pickled = pickle.dumps(model)
    # The model pickles as {"npz": the file's bytes}: flip inside those bytes,
    # which keeps the pickle stream itself well formed.
    npz = pickle.loads(pickled).__getstate__()["npz"]
    start = pickled.find(npz)
    assert start >= 0
    bad = bytearray(pickled)
    bad[start + int(where * len(npz))] ^= xor
    loaded = _outcome(pickle.loads, bytes(bad), "state")
    if loaded is not None:
        _assert_describes(loaded, meta, arrays)


@pytest.mark.parametrize("state", [{}, {"npz": 3}, {"npz": "text"}, [], {"npz": b""},
                                   {"npz": b"PK\x05\x06" + bytes(18)}])
def test_malformed_pickle_state_is_refused(state):
    with pytest.raises(ValueError, match="^state: "):
        fm.MLP.__new__(fm.MLP).__setstate__(state)


# ---------------------------------------------------------------------------
# field edits
# ---------------------------------------------------------------------------


def _write(meta, arrays, headers=None):
    """An archive as np.savez writes it, each .npy header optionally replaced
    (headers: {name: header dict}) while the data bytes stay."""
    meta = {"format": fio.FORMAT, "version": fio.VERSION, **meta}
    entries = {"meta": np.array(json.dumps(meta)), **arrays}
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for key, a in entries.items():
            f = _io.BytesIO()
            a = np.asanyarray(a)
            header = np.lib.format.header_data_from_array_1_0(a)
            header.update((headers or {}).get(key, {}))
            np.lib.format.write_array_header_2_0(f, header)
            f.write(a.tobytes("F" if header["fortran_order"] else "C"))
            zf.writestr(key + ".npy", f.getvalue())
    return buf.getvalue()


def _leaves(obj, prefix=()):
    """Every path into the JSON description, containers included."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*prefix, i))


def _set(obj, path, value):
    obj = json.loads(json.dumps(obj))
    if not path:
        return value
    parent = obj
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return obj


json_values = st.recursive(
    st.none() | st.booleans() | st.sampled_from([0, 1, -1, 2, 3, 7, 10**12, -(10**12), 2**63, 2**64])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["", "relu", "float64", "float32", "mse", "Adam", "SGD", "StepLR", "x" * 50]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(KINDS), data=st.data())
def test_edited_description_is_refused_or_exact(saved, workdir, kind, data):
    _, meta, arrays, _ = saved[kind]
    base = _normal(meta)
    path = data.draw(st.sampled_from(list(_leaves(base))), label="path")
    value = data.draw(json_values, label="value")
    edited = _set(base, path, value)
    if not isinstance(edited, dict):
        edited = {"not": edited}
    blob = _write(edited, arrays)
    model = _outcome(lambda b: _load_file(workdir, b), blob, "path")
    if model is not None:
        # None, and a configuration's missing arguments, mean "the default".
        defaulted = value is None or (path[-1:] == ("config",) and isinstance(value, dict))
        _assert_describes(model, edited, arrays, [path] if defaulted else [])


def _without(d, key):
    return {k: v for k, v in d.items() if k != key}


# (what, edit of (meta, arrays) returning them): each must be refused.
ARRAY_EDITS = {
    "params as int64": lambda m, a: (m, {**a, "params": a["params"].astype(np.int64)}),
    "params as float16": lambda m, a: (m, {**a, "params": a["params"].astype(np.float16)}),
    "params as complex": lambda m, a: (m, {**a, "params": a["params"].astype(np.complex128)}),
    "params as strings": lambda m, a: (m, {**a, "params": a["params"].astype(str)}),
    "params byte-swapped": lambda m, a: (m, {**a, "params": a["params"].astype(
        a["params"].dtype.newbyteorder())}),
    "params 2-D": lambda m, a: (m, {**a, "params": a["params"][None, :]}),
    "params one short": lambda m, a: (m, {**a, "params": a["params"][:-1]}),
    "params one long": lambda m, a: (m, {**a, "params": np.append(a["params"], a["params"][:1])}),
    "params empty": lambda m, a: (m, {**a, "params": a["params"][:0]}),
    "params NaN": lambda m, a: (m, {**a, "params": np.where(np.arange(a["params"].size) == 3,
                                                            np.nan, a["params"]).astype(a["params"].dtype)}),
    "params inf": lambda m, a: (m, {**a, "params": np.full_like(a["params"], np.inf)}),
    "params missing": lambda m, a: (m, _without(a, "params")),
    "optimizer state missing": lambda m, a: (m, _without(a, "optimizer_state_0")),
    "optimizer state extra": lambda m, a: (m, {**a, "optimizer_state_9": a["params"]}),
    "optimizer state short": lambda m, a: (m, {**a, "optimizer_state_0": a["optimizer_state_0"][1:]}),
    "optimizer state as float16": lambda m, a: (m, {**a, "optimizer_state_0": a[
        "optimizer_state_0"].astype(np.float16)}),
    "optimizer state NaN": lambda m, a: (m, {**a, "optimizer_state_0": np.full_like(
        a["optimizer_state_0"], np.nan)}),
    "unknown array": lambda m, a: (m, {**a, "extra": np.zeros(3)}),
    # SGD without momentum keeps no state, Adam two arrays: the file holds the wrong count.
    "other optimizer": lambda m, a: ({**m, "optimizer": {
        "class": "Adam" if m["optimizer"]["class"] == "SGD" else "SGD", "config": {}}}, a),
    "one layer more": lambda m, a: ({**m, "layers": [*m["layers"], m["layers"][-1]]}, a),
    "one layer less": lambda m, a: ({**m, "layers": m["layers"][:-1]}, a),
    "no layers": lambda m, a: ({**m, "layers": []}, a),
    "huge inputs": lambda m, a: ({**m, "inputs": 10**12}, a),
    "huge units": lambda m, a: ({**m, "layers": [{**m["layers"][0], "units": 2**40}, *m["layers"][1:]]}, a),
    "negative units": lambda m, a: ({**m, "layers": [{**m["layers"][0], "units": -4}, *m["layers"][1:]]}, a),
    "float units": lambda m, a: ({**m, "layers": [{**m["layers"][0], "units": 6.5}, *m["layers"][1:]]}, a),
    "NaN lr": lambda m, a: ({**m, "lr": float("nan")}, a),
    "inf lr": lambda m, a: ({**m, "lr": float("inf")}, a),
    "huge step count": lambda m, a: ({**m, "step_count": 2**70}, a),
    "NaN dropout": lambda m, a: ({**m, "layers": [{**l, "dropout": float("nan")} for l in m["layers"]]}, a),
    "other dtype": lambda m, a: ({**m, "dtype": "float64" if m["dtype"] == "float32" else "float32"}, a),
    "no meta fields": lambda m, a: ({}, a),
    "meta not a dict": lambda m, a: ({"format": fio.FORMAT, "layers": 3}, a),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("what", ARRAY_EDITS)
def test_edited_file_is_refused(saved, workdir, kind, what):
    _, meta, arrays, _ = saved[kind]
    if what.startswith("optimizer state") and "optimizer_state_0" not in arrays:
        pytest.skip("this optimizer keeps no state")
    m, a = ARRAY_EDITS[what](_normal(meta), dict(arrays))
    with pytest.raises(ValueError, match="^path: "):
        _load_file(workdir, _write(m, a))


HEADER_EDITS = {
    "huge shape": {"shape": (2**40,)},
    "huger shape": {"shape": (2**62, 2**62)},
    "negative shape": {"shape": (-5,)},
    "zero shape": {"shape": (0,)},
    "other dtype": {"descr": "<i2"},
    "object dtype": {"descr": "|O"},
    "fortran 2-D": {"shape": (1, 1), "fortran_order": True},
}


@pytest.mark.parametrize("what", HEADER_EDITS)
@pytest.mark.parametrize("entry", ["params", "meta"])
def test_edited_array_header_is_refused(saved, workdir, what, entry):
    _, meta, arrays, _ = saved["classifier"]
    blob = _write(_normal(meta), arrays, {entry: HEADER_EDITS[what]})
    with pytest.raises(ValueError, match="^path: "):
        _load_file(workdir, blob)


def test_deep_or_long_description_is_refused(saved, workdir):
    _, meta, arrays, _ = saved["classifier"]
    for text in ("[" * 100_000, '{"format": "fastmlp-model", "version": ' + "9" * 5000 + "}"):
        blob = _write({}, arrays)
        with zipfile.ZipFile(_io.BytesIO(blob)) as zf:
            entries = {i.filename: zf.read(i) for i in zf.infolist()}
        f = _io.BytesIO()
        np.lib.format.write_array(f, np.array(text))
        entries["meta.npy"] = f.getvalue()
        buf = _io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for k, v in entries.items():
                zf.writestr(k, v)
        with pytest.raises(ValueError, match="^path: corrupt model description"):
            _load_file(workdir, buf.getvalue())


# ---------------------------------------------------------------------------
# zip bombs: deflated entries that claim or inflate to far more than the file
# ---------------------------------------------------------------------------


def _raw_zip(entries):
    """A zip archive written by hand, so that an entry's declared sizes can be
    anything: entries = [(name, method, crc, stored bytes, declared size)]."""
    out, central = bytearray(), bytearray()
    for name, method, crc, data, size in entries:
        offset, nb = len(out), name.encode()
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc,
                           len(data), size, len(nb), 0) + nb + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21,
                               crc, len(data), size, len(nb), 0, 0, 0, 0, 0, offset) + nb
    start = len(out)
    out += central
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                       len(central), start, 0)
    return bytes(out)


def _bomb(claimed, inflated):
    """A model file whose "params" entry is deflate that inflates to an .npy
    header for `claimed` bytes of float64 followed by `inflated` zero bytes
    (fed in 1 MiB pieces, so that building it holds no large buffer), and
    declares `claimed` plus the header as its size; the other entries are a
    real model's, stored."""
    blob = _write({}, {"params": np.zeros(1)})
    f = _io.BytesIO()
    np.lib.format.write_array_header_2_0(
        f, {"descr": "<f8", "fortran_order": False, "shape": (claimed // 8,)})
    header = f.getvalue()
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate, as in zip
    parts, crc = [comp.compress(header)], zlib.crc32(header)
    piece = bytes(1 << 20)
    for _ in range(inflated >> 20):
        parts.append(comp.compress(piece))
        crc = zlib.crc32(piece, crc)
    parts.append(comp.flush())
    entries = [("params.npy", zipfile.ZIP_DEFLATED, crc, b"".join(parts), len(header) + claimed)]
    with zipfile.ZipFile(_io.BytesIO(blob)) as zf:
        for info in zf.infolist():
            if info.filename != "params.npy":
                data = zf.read(info)
                entries.append((info.filename, zipfile.ZIP_STORED, zlib.crc32(data), data,
                                len(data)))
    return _raw_zip(entries)


@pytest.mark.parametrize(("claimed", "inflated"), [
    (256 << 20, 256 << 20),   # a real bomb: ~260 kB of deflate that inflate to 256 MiB
    (3 << 30, 1 << 20),       # a claim: 3 GiB declared, 1 MiB behind it
], ids=["inflates", "claims"])
def test_zip_bomb_is_refused_before_inflating(workdir, claimed, inflated):
    blob = _bomb(claimed, inflated)
    assert len(blob) < claimed // 500
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"^path: .*zip bomb"):
            _load_file(workdir, blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Nothing of the claimed size was allocated or inflated (the file itself
    # is read by zipfile a piece at a time).
    assert peak < 16 << 20, peak


def test_deflated_model_file_loads(saved, workdir):
    # Deflate is accepted (an archive rewritten by another tool): a real
    # model's entries compressed stay far within the expansion bound.
    for kind in KINDS:
        m, meta, arrays, blob = saved[kind]
        buf = _io.BytesIO()
        with zipfile.ZipFile(_io.BytesIO(blob)) as src, \
                zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info))
        loaded = _load_file(workdir, buf.getvalue())
        got_meta, got_arrays = loaded._state()
        assert got_meta == meta
        for k, a in arrays.items():
            assert got_arrays[k].tobytes() == np.ascontiguousarray(a).tobytes(), k
