"""Model files: one .npz holding named arrays and a JSON description, no
pickle inside. This module only reads and writes; what goes in is the
model's business (fm.MLP._state() / MLP._from_state()).

A model file holds the flat parameter buffer (the core's own layout, padding
included, so it is restored with one copy), the batch-norm running
statistics, the optimizer's state buffers, and the JSON entry "meta" with
everything else: the architecture, the optimizer and schedule with their
configuration and state, the regularization and the step counters. A loaded
model therefore continues training exactly where the saved one stopped.
"""

from __future__ import annotations

import io as _io
import json
import os
from typing import Any

import numpy as np

__all__ = ["from_bytes", "load_npz", "save_npz", "to_bytes"]

FORMAT = "fastmlp-model"
VERSION = 1


def _write(target, meta, arrays):
    meta = {"format": FORMAT, "version": VERSION, **meta}
    np.savez(target, meta=np.array(json.dumps(meta)), **arrays)


def save_npz(path: str | os.PathLike, meta: dict[str, Any],
             arrays: dict[str, np.ndarray]) -> str:
    """Write a description and named arrays to one .npz file.

    Parameters
    ----------
    path : str or os.PathLike
        The file; the suffix .npz is added when missing.
    meta : dict
        A JSON-able description, stored as the entry "meta" with the format
        name and version.
    arrays : dict of str to ndarray
        The named arrays.

    Returns
    -------
    str
        The path written.
    """
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    with open(path, "wb") as f:
        _write(f, meta, arrays)
    return path


def to_bytes(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes :func:`save_npz` would write (pickling a model uses them).

    Parameters
    ----------
    meta : dict
        A JSON-able description.
    arrays : dict of str to ndarray
        The named arrays.

    Returns
    -------
    bytes
        The .npz file's content.
    """
    buf = _io.BytesIO()
    _write(buf, meta, arrays)
    return buf.getvalue()


def _read(source, name):
    try:
        with np.load(source, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{name}: not a readable fastmlp model file ({e})") from None
    if "meta" not in data:
        raise ValueError(f"{name}: not a fastmlp model file (no 'meta' entry)")
    try:
        meta = json.loads(str(data.pop("meta")))
    except json.JSONDecodeError as e:
        raise ValueError(f"{name}: corrupt model description ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{name}: not a fastmlp model file")
    version = meta.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"{name}: corrupt model description (version {version!r})")
    if version > VERSION:
        raise ValueError(f"{name}: written by a newer fastmlp (format version {version})")
    return meta, data


def load_npz(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a file that :func:`save_npz` wrote (no pickle is ever loaded).

    Parameters
    ----------
    path : str or os.PathLike
        The file; ``path + ".npz"`` is tried when path does not exist.

    Returns
    -------
    meta : dict
        The description.
    arrays : dict of str to ndarray
        The named arrays.

    Raises
    ------
    FileNotFoundError
        When there is no such file.
    ValueError
        Naming ``path``, for a file that is not a fastmlp model file, or one
        written by a newer format version.
    """
    p = os.fspath(path)
    if not os.path.exists(p) and os.path.exists(p + ".npz"):
        p += ".npz"
    if not os.path.exists(p):
        raise FileNotFoundError(f"path: no such file {p!r}")
    return _read(p, "path")


def from_bytes(blob: bytes, name: str = "state") -> tuple[dict[str, Any],
                                                          dict[str, np.ndarray]]:
    """Read what :func:`to_bytes` wrote.

    Parameters
    ----------
    blob : bytes
        The bytes.
    name : str, default "state"
        The name error messages give the data.

    Returns
    -------
    meta : dict
        The description.
    arrays : dict of str to ndarray
        The named arrays.
    """
    return _read(_io.BytesIO(blob), name)
