"""Data sets: small built-in generators, and readers for the classic files.

make_spirals and make_xor need nothing but NumPy. load_mnist reads the four
IDX files (gzipped or not) from a folder: ``path``, else $FASTMLP_DATA (or
its ``mnist`` subfolder). load_california_housing reads ``housing.csv``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["load_california_housing", "load_mnist", "make_spirals", "make_xor"]


def make_xor(dtype=np.float64):
    """The four points of XOR and their labels."""
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    return X, np.array([0, 1, 1, 0])


def make_spirals(n_per_class=300, n_classes=3, noise=0.15, turns=1.25, seed=0):
    """Interleaved spiral arms in the plane, one per class: a classification
    problem no linear model can solve. Returns X (n, 2) float64, y (n,) int."""
    rng = np.random.default_rng(seed)
    X, y = [], []
    for c in range(n_classes):
        r = np.linspace(0.08, 1.0, n_per_class)
        theta = (r * turns * 2 * np.pi + c * 2 * np.pi / n_classes
                 + rng.normal(0.0, noise, n_per_class))
        X.append(np.column_stack([r * np.cos(theta), r * np.sin(theta)]))
        y.append(np.full(n_per_class, c))
    X = np.concatenate(X)
    y = np.concatenate(y)
    order = rng.permutation(len(y))
    return X[order], y[order]


# SHA-256 of the canonical gzipped MNIST files.
MNIST_FILES = {
    "train_images": ("train-images-idx3-ubyte",
                     "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    "train_labels": ("train-labels-idx1-ubyte",
                     "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    "test_images": ("t10k-images-idx3-ubyte",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    "test_labels": ("t10k-labels-idx1-ubyte",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
}


def read_idx(path):
    """An IDX file (optionally gzipped) as a NumPy array of its stored type."""
    path = Path(path)
    if path.suffix == ".gz":
        raw = path.read_bytes()
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # not gzip, corrupt, truncated
            raise ValueError(f"path: {path} is not a valid gzip file ({e})") from None
    else:
        data = path.read_bytes()
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"path: {path} is not an IDX file (bad magic number)")
    types = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if data[2] not in types:
        raise ValueError(f"path: {path} has an unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"path: {path} is truncated (header)")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(types[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"path: {path} holds {len(data) - header} bytes of data, its header says {expected}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find_dir(path, sub):
    candidates = []
    if path is not None:
        candidates.append(Path(path))
    elif os.environ.get("FASTMLP_DATA"):
        base = Path(os.environ["FASTMLP_DATA"])
        candidates += [base / sub, base]
    for c in candidates:
        if c.is_dir():
            return c
    raise FileNotFoundError(
        f"path: no {sub} data folder found (tried {[str(c) for c in candidates] or 'nothing'}); "
        f"pass path= or set FASTMLP_DATA to a folder that holds it"
    )


def load_mnist(path=None, verify=True):
    """MNIST as ((X_train, y_train), (X_test, y_test)): X uint8 (n, 784), y uint8.

    Scale with X / 255 (or standardize) before training. verify=True checks
    the gzipped files against their published SHA-256."""
    folder = _find_dir(path, "mnist")
    out = {}
    for key, (stem, sha) in MNIST_FILES.items():
        gz, raw = folder / f"{stem}.gz", folder / stem
        if gz.is_file():
            if verify and hashlib.sha256(gz.read_bytes()).hexdigest() != sha:
                raise ValueError(f"path: {gz} does not match the published SHA-256 of MNIST")
            out[key] = read_idx(gz)
        elif raw.is_file():
            out[key] = read_idx(raw)
        else:
            raise FileNotFoundError(f"path: {folder} has neither {gz.name} nor {raw.name}")
    Xtr = out["train_images"].reshape(len(out["train_images"]), -1)
    Xte = out["test_images"].reshape(len(out["test_images"]), -1)
    return (Xtr, out["train_labels"]), (Xte, out["test_labels"])


def load_california_housing(path=None):
    """housing.csv (the 1990 California census block groups) as (X, y, feature_names).

    Numeric columns only, ocean_proximity one-hot encoded, missing
    total_bedrooms filled with the column median; y is median_house_value."""
    folder = _find_dir(path, "california-housing") if path is None or Path(path).is_dir() else None
    csv = folder / "housing.csv" if folder is not None else Path(path)
    with open(csv, encoding="utf-8") as f:
        header = f.readline().strip().split(",")
        rows = [line.rstrip("\n").split(",") for line in f if line.strip()]
    cat_col = header.index("ocean_proximity")
    target_col = header.index("median_house_value")
    categories = sorted({r[cat_col] for r in rows})
    num_cols = [i for i in range(len(header)) if i not in (cat_col, target_col)]
    num = np.array([[float(r[i]) if r[i] else np.nan for i in num_cols] for r in rows])
    medians = np.nanmedian(num, axis=0)
    num = np.where(np.isnan(num), medians, num)
    onehot = np.array([[1.0 if r[cat_col] == c else 0.0 for c in categories] for r in rows])
    X = np.hstack([num, onehot])
    y = np.array([float(r[target_col]) for r in rows])
    names = [header[i] for i in num_cols] + [f"ocean_proximity={c}" for c in categories]
    return X, y, names
