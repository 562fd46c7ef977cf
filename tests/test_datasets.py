"""fastmlp.datasets: the IDX reader on files written here, bad files, and the
MNIST files the README promises tests for (../shared/data/mnist or
$FASTMLP_DATA; skipped, saying why, when absent)."""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys

import numpy as np
import pytest

import fastmlp as fm
from conftest import shared_data_dir
from fastmlp import datasets

def test_fm_datasets_is_reachable_after_import_fastmlp():
    # DESIGN.md's public name is fm.datasets.load_mnist; a fresh interpreter,
    # because this module has imported fastmlp.datasets itself.
    code = "import fastmlp as fm; print(fm.datasets.load_mnist.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "load_mnist"


IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_bytes(a, type_code):
    """The IDX encoding: 0, 0, type, ndim, big-endian uint32 sizes, big-endian data."""
    a = np.asarray(a, dtype=np.dtype(IDX_TYPES[type_code]))
    header = bytes([0, 0, type_code, a.ndim]) + b"".join(struct.pack(">I", s) for s in a.shape)
    return header + a.tobytes()


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("type_code", list(IDX_TYPES), ids=lambda c: f"0x{c:02x}")
def test_read_idx_round_trip(tmp_path, rng, type_code, gz):
    dtype = np.dtype(IDX_TYPES[type_code])
    shape = (3, 5, 4)
    if dtype.kind == "f":
        a = rng.standard_normal(shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        a = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    data = idx_bytes(a, type_code)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(data) if gz else data)
    got = datasets.read_idx(path)
    assert got.shape == shape
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, a)


def test_read_idx_one_dimensional(tmp_path):
    labels = np.array([3, 1, 4, 1, 5, 9], np.uint8)
    (tmp_path / "l").write_bytes(idx_bytes(labels, 0x08))
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "l"), labels)


GOOD = idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 4), 0x08)

BAD_FILES = {
    "empty": (b"", "bad magic"),
    "bad magic": (b"\x01\x00" + GOOD[2:], "bad magic"),
    "unknown type": (GOOD[:2] + b"\x07" + GOOD[3:], "unknown IDX element type 0x07"),
    "truncated header": (GOOD[:6], "truncated"),
    "data too short": (GOOD[:-1], "holds 11 bytes of data, its header says 12"),
    "data too long": (GOOD + b"\x00", "holds 13 bytes of data, its header says 12"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_read_idx_rejects_bad_files(tmp_path, case, gz):
    data, message = BAD_FILES[case]
    path = tmp_path / ("bad.gz" if gz else "bad")
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=r"^path: .*" + message):
        datasets.read_idx(path)


@pytest.mark.parametrize("content", [GOOD, b"\x1f\x8b\x08\x00garbage", gzip.compress(GOOD)[:-6]],
                         ids=["not gzip", "corrupt gzip", "truncated gzip"])
def test_read_idx_rejects_a_bad_gzip_file_with_value_error(tmp_path, content):
    path = tmp_path / "images.gz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"^path: .*images\.gz"):
        datasets.read_idx(path)


def _write_mnist(folder, n_train=5, n_test=3, gz=False):
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for stem, a in arrays.items():
        data = idx_bytes(a, 0x08)
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)
    return arrays


def test_load_mnist_from_raw_files(tmp_path):
    arrays = _write_mnist(tmp_path)
    (Xtr, ytr), (Xte, yte) = fm.datasets.load_mnist(path=tmp_path)
    assert Xtr.shape == (5, 784) and Xte.shape == (3, 784)
    np.testing.assert_array_equal(Xtr, arrays["train-images-idx3-ubyte"].reshape(5, 784))
    np.testing.assert_array_equal(ytr, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(Xte, arrays["t10k-images-idx3-ubyte"].reshape(3, 784))
    np.testing.assert_array_equal(yte, arrays["t10k-labels-idx1-ubyte"])


def test_load_mnist_checks_the_sha256_of_gzipped_files(tmp_path):
    arrays = _write_mnist(tmp_path, gz=True)
    with pytest.raises(ValueError, match="SHA-256"):
        fm.datasets.load_mnist(path=tmp_path)
    (Xtr, ytr), _ = fm.datasets.load_mnist(path=tmp_path, verify=False)
    np.testing.assert_array_equal(ytr, arrays["train-labels-idx1-ubyte"])


def test_load_mnist_missing_file_or_folder(tmp_path):
    _write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        fm.datasets.load_mnist(path=tmp_path)
    with pytest.raises(FileNotFoundError, match="path:"):
        fm.datasets.load_mnist(path=tmp_path / "nowhere")


def test_load_mnist_finds_fastmlp_data(tmp_path, monkeypatch):
    (tmp_path / "mnist").mkdir()
    arrays = _write_mnist(tmp_path / "mnist")
    monkeypatch.setenv("FASTMLP_DATA", str(tmp_path))
    (_, ytr), _ = fm.datasets.load_mnist()
    np.testing.assert_array_equal(ytr, arrays["train-labels-idx1-ubyte"])


# ---------------------------------------------------------------------------
# the real MNIST files
# ---------------------------------------------------------------------------

# Class counts of the published MNIST training and test sets.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist():
    base = shared_data_dir()
    folder = None if base is None else base / "mnist"
    if folder is None or not folder.is_dir():
        pytest.skip("MNIST not found: set FASTMLP_DATA or put the IDX files in "
                    "../shared/data/mnist")
    return fm.datasets.load_mnist(path=folder)  # verifies the SHA-256 of .gz files


def test_mnist_files_are_the_published_ones(mnist):
    (Xtr, ytr), (Xte, yte) = mnist
    assert Xtr.shape == (60000, 784) and Xte.shape == (10000, 784)
    assert Xtr.dtype == np.uint8 and ytr.dtype == np.uint8
    assert np.bincount(ytr, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(yte, minlength=10).tolist() == TEST_COUNTS
    # Digits are dark strokes on 0 background, using the whole byte range.
    assert Xtr.min() == 0 and Xtr.max() == 255
    assert 0.1 < np.mean(Xtr > 0) < 0.25


def test_mnist_subset_trains_to_90_percent(mnist):
    # 10000 training rows, 2 epochs: well under a second of training; the
    # whole test set is measured (about 0.91-0.92 for seeds 0-2).
    (Xtr, ytr), (Xte, yte) = mnist
    X = Xtr[:10000].astype(np.float32) / 255.0
    Xt = Xte.astype(np.float32) / 255.0
    model = fm.MLP([784, 64, 10], activation="relu", seed=0)
    model.compile(fm.optim.Adam(2e-3))
    model.fit(X, ytr[:10000].astype(np.int64), epochs=2, batch_size=64, verbose=0)
    accuracy = float(np.mean(model.predict(Xt) == yte))
    assert accuracy > 0.9
