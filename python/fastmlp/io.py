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
import zipfile
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


# What a file may declare before any of it is believed: the entry count and
# the JSON description's size bound what a corrupt file can make us parse.
_MAX_ENTRIES = 4096
_MAX_META_CHARS = 1 << 22


# Compressed entries. np.savez, which save_npz uses, stores every entry as it
# is; a deflated entry (an archive rewritten by another tool) is accepted, but
# a zip bomb (a few kB of deflate that inflate to gigabytes) is refused before
# anything is inflated: an archive's deflated entries may declare at most
# _MAX_EXPANSION times their compressed bytes (model arrays compress far less:
# float weights hardly at all), plus _EXPANSION_SLACK for small entries such
# as the description, whose text compresses well. Entries are inflated
# _READ_CHUNK bytes at a time into the array they fill, never past the size
# the array header needs.
_MAX_EXPANSION = 64
_EXPANSION_SLACK = 1 << 16
_READ_CHUNK = 1 << 20
_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


class _Corrupt(Exception):
    """A reason the container is malformed (turned into ValueError by _read)."""


def _read_entry(zf, info):
    """One .npy entry of the archive, its declared size checked against the
    entry's before anything is allocated, read to the end so that the
    archive's CRC-32 is verified."""
    if info.flag_bits & 0x1:
        raise _Corrupt(f"entry {info.filename!r} is encrypted")
    with zf.open(info) as f:
        major, minor = np.lib.format.read_magic(f)
        if (major, minor) == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif (major, minor) in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise _Corrupt(f"entry {info.filename!r}: unknown .npy version {major}.{minor}")
        if dtype.hasobject or dtype.itemsize == 0:
            raise _Corrupt(f"entry {info.filename!r}: unsupported dtype {dtype}")
        if any(d < 0 for d in shape):
            raise _Corrupt(f"entry {info.filename!r}: negative size in shape {shape}")
        count = 1
        for d in shape:
            count *= d
        nbytes = count * dtype.itemsize
        # A header may claim any shape; only the entry's own length is real.
        if f.tell() + nbytes != info.file_size:
            raise _Corrupt(f"entry {info.filename!r}: shape {shape} of {dtype} needs {nbytes} "
                           f"bytes, the entry holds {info.file_size - f.tell()}")
        # Inflated (or read) in bounded chunks straight into the array: never
        # more than the header's nbytes, and no second copy of the data.
        a = np.empty(count, dtype=dtype)
        view = a.view(np.uint8) if nbytes else None
        done = 0
        while done < nbytes:
            chunk = f.read(min(_READ_CHUNK, nbytes - done))
            if not chunk:
                raise _Corrupt(f"entry {info.filename!r} is truncated")
            view[done:done + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            done += len(chunk)
        if f.read(1):
            raise _Corrupt(f"entry {info.filename!r} is longer than its header declares")
    return a.reshape(shape, order="F" if fortran else "C")


def _check_sizes(infos, archive_bytes):
    """The entries' declared sizes, before any is inflated: methods stored or
    deflated only, a stored entry's two sizes equal, the compressed bytes
    within the archive, and the deflated entries' declared sizes within
    _MAX_EXPANSION times their compressed bytes (a zip bomb otherwise)."""
    declared = packed = total = 0
    for info in infos:
        method = _METHODS.get(info.compress_type)
        if method is None:
            raise _Corrupt(f"entry {info.filename!r}: compression method "
                           f"{info.compress_type} (expected stored or deflated)")
        total += info.compress_size
        if method == "stored" and info.file_size != info.compress_size:
            raise _Corrupt(f"stored entry {info.filename!r} declares {info.file_size} bytes "
                           f"but holds {info.compress_size}")
        if method == "deflated":
            declared += info.file_size
            packed += info.compress_size
    if total > archive_bytes:
        raise _Corrupt(f"its entries declare {total} compressed bytes, the archive has "
                       f"{archive_bytes}")
    if declared > _MAX_EXPANSION * packed + _EXPANSION_SLACK:
        raise _Corrupt(f"its deflated entries declare {declared} bytes from {packed} "
                       f"compressed bytes, more than {_MAX_EXPANSION} times (a zip bomb); "
                       f"refused before inflating")


def _entries(source):
    with zipfile.ZipFile(source) as zf:
        infos = zf.infolist()
        if len(infos) > _MAX_ENTRIES:
            raise _Corrupt(f"{len(infos)} entries")
        zf.fp.seek(0, os.SEEK_END)
        _check_sizes(infos, zf.fp.tell())
        data = {}
        for info in infos:
            key, ext = os.path.splitext(info.filename)
            if ext != ".npy" or not key:
                raise _Corrupt(f"unexpected entry {info.filename!r}")
            if key in data:
                raise _Corrupt(f"entry {info.filename!r} appears twice")
            data[key] = _read_entry(zf, info)
    return data


def _read(source, name):
    try:
        data = _entries(source)
    except MemoryError:
        raise
    except Exception as e:
        # The container is parsed by zipfile, zlib and numpy.lib.format,
        # whose exceptions for malformed input are not documented as a
        # closed set (BadZipFile, EOFError, struct.error, zlib.error,
        # NotImplementedError, OverflowError, UnicodeDecodeError, ...).
        # Whatever they raise, the file is what is wrong.
        reason = e if isinstance(e, _Corrupt) else repr(e)
        raise ValueError(f"{name}: not a readable fastmlp model file ({reason})") from None
    m = data.pop("meta", None)
    if m is None:
        raise ValueError(f"{name}: not a fastmlp model file (no 'meta' entry)")
    if m.shape != () or m.dtype.kind != "U" or m.dtype.itemsize > 4 * _MAX_META_CHARS:
        raise ValueError(f"{name}: corrupt model description (a {m.dtype} array of shape "
                         f"{m.shape}, expected one string)")
    try:
        meta = json.loads(str(m[()]))
    except (ValueError, RecursionError) as e:
        # ValueError covers json.JSONDecodeError and integers too long to parse.
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
