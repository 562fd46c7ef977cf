"""Data sets: small built-in generators, and loaders for the classic files.

make_xor and make_spirals need nothing but NumPy. load_mnist (MNIST digits
or Fashion-MNIST, four IDX files) and load_california_housing (one CSV file)
look for their files in this order and use the first folder that holds all
of them:

1. ``path=``, when given (and nothing else: a missing file is an error);
2. ``$FASTMLP_DATA/<subfolder>``: ``mnist/``, ``fashion-mnist/`` or
   ``california-housing/``, the layout of the project's shared data folder;
3. the cache, ``<cache>/<subfolder>``, where ``<cache>`` is ``cache_dir=``,
   else ``$FASTMLP_CACHE``, else ``$XDG_CACHE_HOME/fastmlp``, else
   ``~/.cache/fastmlp``;
4. a download into the cache (``download=True``, the default): each file
   is fetched once from a list of mirrors, or from ``url=`` /
   ``$FASTMLP_MNIST_URL`` / ``$FASTMLP_FASHION_MNIST_URL`` /
   ``$FASTMLP_HOUSING_URL``, written to a temporary file beside its final
   name, checked against its published SHA-256 and only then renamed into
   place (an atomic rename: a reader never sees half a file).

Offline with no files, the error (FileNotFoundError) lists where the files
were looked for and where to put them. Only the standard library's urllib is
used: NumPy stays the only runtime dependency.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["load_california_housing", "load_mnist", "make_spirals", "make_xor", "read_idx"]

logger = logging.getLogger(__name__)


def make_xor(dtype=np.float64):
    """The four points of XOR and their labels.

    Parameters
    ----------
    dtype : numpy dtype, default float64
        Type of the returned inputs.

    Returns
    -------
    X : ndarray of shape (4, 2)
        The corners of the unit square.
    y : ndarray of shape (4,), int
        ``X[:, 0] xor X[:, 1]``.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    return X, np.array([0, 1, 1, 0])


def make_spirals(n_per_class=300, n_classes=3, noise=0.15, turns=1.25, seed=0):
    """Interleaved spiral arms in the plane, one per class.

    A classification problem no linear model can solve.

    Parameters
    ----------
    n_per_class : int, default 300
        Points per arm.
    n_classes : int, default 3
        Number of arms (classes).
    noise : float, default 0.15
        Standard deviation of the angular noise, in radians.
    turns : float, default 1.25
        How many times each arm winds around the origin.
    seed : int, default 0
        Seed of the NumPy generator; the same seed gives the same points.

    Returns
    -------
    X : ndarray of shape (n_per_class * n_classes, 2), float64
        The points, shuffled.
    y : ndarray of shape (n_per_class * n_classes,), int
        The arm of each point.
    """
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


# ---------------------------------------------------------------------------
# Where the files come from
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Source:
    """One data set's files: what they are called, their SHA-256 as served
    (the .gz for IDX files), the mirrors to fetch them from (base URLs, tried
    in order) and the environment variable that replaces the mirrors."""

    title: str
    subdir: str
    sha256: dict  # file name -> SHA-256 hex digest
    mirrors: tuple
    url_env: str
    # $FASTMLP_DATA itself may hold the files (the lookup before fastmlp 0.1
    # had subfolders); never for Fashion-MNIST, whose file names are MNIST's.
    env_root_ok: bool = True


# SHA-256 of the canonical gzipped MNIST files (/work/shared/data/SOURCES.md;
# the same values TensorFlow Datasets pins). Mirrors: torchvision's, then the
# original page (which answers 403 to many clients nowadays).
_MNIST_DIGITS = _Source(
    title="MNIST",
    subdir="mnist",
    sha256={
        "train-images-idx3-ubyte.gz":
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz":
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz":
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz":
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    url_env="FASTMLP_MNIST_URL",
)

# SHA-256 of zalandoresearch's gzipped Fashion-MNIST files, as TensorFlow
# Datasets pins them (tensorflow_datasets/url_checksums/fashion_mnist.txt,
# with sizes 26421880, 29515, 4422102 and 5148 bytes); the same four values
# are pinned beside the MD5s of the Fashion-MNIST README (8d4fb7e6...,
# 25c81989..., bef4ecab..., bb300cfd...) by independent projects.
_MNIST_FASHION = _Source(
    title="Fashion-MNIST",
    subdir="fashion-mnist",
    sha256={
        "train-images-idx3-ubyte.gz":
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz":
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz":
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz":
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    url_env="FASTMLP_FASHION_MNIST_URL",
    env_root_ok=False,
)

_MNIST = {"digits": _MNIST_DIGITS, "fashion": _MNIST_FASHION}

# housing.csv of ageron/handson-ml2 (SOURCES.md): the pinned commit first,
# master second (the file has not changed since).
_HOUSING = _Source(
    title="California housing",
    subdir="california-housing",
    sha256={"housing.csv": "8a3727f4cf54ac1a327f69b1d5b4db54c5834ea81c6e4efc0d163300022a685e"},
    mirrors=(
        ("https://raw.githubusercontent.com/ageron/handson-ml2/"
         "1e2115277b50f6c584cd668fa30e3af309a5b136/datasets/housing/"),
        "https://raw.githubusercontent.com/ageron/handson-ml2/master/datasets/housing/",
    ),
    url_env="FASTMLP_HOUSING_URL",
)

# IDX file stem -> (what it holds, key in the result)
_MNIST_STEMS = {
    "train-images-idx3-ubyte": "images",
    "train-labels-idx1-ubyte": "labels",
    "t10k-images-idx3-ubyte": "images",
    "t10k-labels-idx1-ubyte": "labels",
}


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read an IDX file (the format of the MNIST files), gzipped or not.

    Parameters
    ----------
    path : str or os.PathLike
        The file. A name ending in ``.gz`` is decompressed first.

    Returns
    -------
    ndarray
        The array, of the element type and shape its header states (images:
        ``(n, rows, cols)``; labels: ``(n,)``). Multi-byte types keep their
        big-endian dtype.

    Raises
    ------
    ValueError
        Naming the file: not gzip (or a corrupt or truncated gzip stream), a
        bad magic number, an unknown element type, a truncated header, or
        more or fewer data bytes than the header's dimensions call for.
    OSError
        The file cannot be read.
    """
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
    if data[2] not in _IDX_TYPES:
        raise ValueError(f"path: {path} has an unknown IDX element type 0x{data[2]:02x}")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"path: {path} is truncated (header)")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"path: {path} holds {len(data) - header} bytes of data, its header says {expected}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_sha256(file, expected, title):
    got = _sha256(file)
    if got != expected:
        raise ValueError(
            f"path: {file} does not match the published SHA-256 of {title} "
            f"(expected {expected}, got {got}); replace it (deleted from the cache, it is "
            f"downloaded again), or pass verify=False to read it anyway"
        )


# ---------------------------------------------------------------------------
# Finding and downloading
# ---------------------------------------------------------------------------

def _cache_root(cache_dir):
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("FASTMLP_CACHE"):
        return Path(os.environ["FASTMLP_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "fastmlp"
    return Path.home() / ".cache" / "fastmlp"


def _alternatives(name):
    """The names a file may have on disk: the .gz as served, or decompressed."""
    return (name, name[:-3]) if name.endswith(".gz") else (name,)


def _present(folder, name):
    for alt in _alternatives(name):
        if (folder / alt).is_file():
            return folder / alt
    return None


def _missing(folder, source):
    return [n for n in source.sha256 if _present(folder, n) is None]


def _describe(name):
    alts = _alternatives(name)
    return alts[0] if len(alts) == 1 else f"{alts[0]} (or {alts[1]})"


def _base_urls(source, url):
    if url is None:
        url = os.environ.get(source.url_env) or None
    if url is None:
        return list(source.mirrors)
    urls = url.split() if isinstance(url, str) else [str(u) for u in url]
    for u in urls:
        if urllib.parse.urlsplit(u).scheme not in ("http", "https", "file"):
            raise ValueError(f"url: expected http://, https:// or file:// URLs, got {u!r}")
    if not urls:
        raise ValueError(f"url: expected at least one URL, got {url!r}")
    return urls


def _join(base, name):
    # A full URL to the file is taken as it is; anything else is a folder.
    if base.rstrip("/").rsplit("/", 1)[-1] == name:
        return base
    return base.rstrip("/") + "/" + name


class _DownloadFailed(Exception):
    def __init__(self, attempts):
        super().__init__("; ".join(attempts))
        self.attempts = attempts


def _download(name, expected, folder, base_urls, timeout):
    """Fetch one file into folder, trying each base URL in turn; the file
    appears under its name only once its SHA-256 matched."""
    folder.mkdir(parents=True, exist_ok=True)
    attempts, mismatches = [], []
    for base in base_urls:
        url = _join(base, name)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
        try:
            logger.info("downloading %s to %s", url, folder)
            h = hashlib.sha256()
            with os.fdopen(fd, "wb") as out, \
                    urllib.request.urlopen(url, timeout=timeout) as response:
                for chunk in iter(lambda r=response: r.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
            got = h.hexdigest()
            if got != expected:
                mismatches.append(f"{url}: expected SHA-256 {expected}, got {got}")
                continue
            os.replace(tmp, folder / name)
            tmp = None
            return folder / name
        except (OSError, http.client.HTTPException) as e:  # URLError and timeouts are OSErrors
            attempts.append(f"{url}: {e}")
        finally:
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(tmp)
    if mismatches:
        raise ValueError(
            f"{name}: the downloaded file does not match its published SHA-256 and was "
            f"deleted ({'; '.join(mismatches)})"
            + (f"; other mirrors failed: {'; '.join(attempts)}" if attempts else "")
        )
    raise _DownloadFailed(attempts)


def _locate(source, path, cache_dir, download, url, timeout, fn):
    """The folder that holds every file of source, downloading into the cache
    when nothing else does. Raises FileNotFoundError saying where it looked."""
    if path is not None:
        p = Path(path)
        for folder in (p, p / source.subdir):
            if folder.is_dir() and not _missing(folder, source):
                return folder
        if not p.exists():
            raise FileNotFoundError(f"path: {p} does not exist")
        if not p.is_dir():
            raise FileNotFoundError(f"path: {p} is not a folder")
        missing = ", ".join(_describe(n) for n in _missing(p, source))
        raise FileNotFoundError(
            f"path: {p} does not hold the {source.title} files (missing: {missing}; "
            f"looked in {p} and {p / source.subdir})"
        )

    looked = []
    env = os.environ.get("FASTMLP_DATA")
    if env:
        base = Path(env).expanduser()
        for folder in (base / source.subdir, base) if source.env_root_ok else (base / source.subdir,):
            if folder.is_dir() and not _missing(folder, source):
                return folder
            looked.append(f"{folder} (from $FASTMLP_DATA)")
    else:
        looked.append("$FASTMLP_DATA (not set)")

    cache = _cache_root(cache_dir) / source.subdir
    missing = _missing(cache, source) if cache.is_dir() else list(source.sha256)
    if not missing:
        return cache
    looked.append(f"{cache} (the cache)")

    attempts = []
    if download:
        bases = _base_urls(source, url)
        try:
            for name in missing:
                _download(name, source.sha256[name], cache, bases, timeout)
            return cache
        except _DownloadFailed as e:
            attempts = e.attempts
    names = ", ".join(_describe(n) for n in source.sha256)
    how = ("not downloaded: download=False" if not download else
           "download failed:\n    " + "\n    ".join(attempts))
    raise FileNotFoundError(
        f"{fn}: the {source.title} data was not found and could not be downloaded.\n"
        f"  files: {names}\n"
        f"  looked in: {'; '.join(looked)}\n"
        f"  {how}\n"
        f"  fix: put the files in {cache}, or in a folder DIR/{source.subdir} and set "
        f"FASTMLP_DATA=DIR, or pass path=FOLDER; online, {fn}() downloads them into the "
        f"cache itself (set ${source.url_env} or pass url= to use another mirror)"
    )


# ---------------------------------------------------------------------------
# The loaders
# ---------------------------------------------------------------------------

def load_mnist(kind="digits", path=None, *, download=True, cache_dir=None, url=None,
               verify=True, timeout=30.0):
    """MNIST handwritten digits or Fashion-MNIST, as uint8 arrays.

    Reads the four IDX files ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
    ``t10k-labels-idx1-ubyte``, each gzipped (``.gz``) or not, from the first
    of: ``path``; ``$FASTMLP_DATA/mnist`` (or ``$FASTMLP_DATA`` itself) for
    digits, ``$FASTMLP_DATA/fashion-mnist`` for fashion; the cache folder
    ``<cache>/mnist`` or ``<cache>/fashion-mnist``. Files missing from the
    cache are downloaded there once, when ``download`` is true.

    Parameters
    ----------
    kind : {"digits", "fashion"}, default "digits"
        MNIST (LeCun, Cortes and Burges) or Fashion-MNIST (Xiao, Rasul and
        Vollgraf, 2017: 28x28 pictures of clothes, the same file names and
        layout, ten classes from 0 "T-shirt/top" to 9 "Ankle boot").
    path : str or os.PathLike, optional
        A folder that holds the four files (or a ``mnist/`` /
        ``fashion-mnist/`` subfolder that does). When given, nothing else is
        searched and nothing is downloaded.
    download : bool, default True
        Fetch missing files into the cache. Each is written to a temporary
        file, checked against its published SHA-256, then renamed into place.
    cache_dir : str or os.PathLike, optional
        Root of the cache; the files go to its ``mnist/`` or
        ``fashion-mnist/`` subfolder. Default: ``$FASTMLP_CACHE``, else
        ``$XDG_CACHE_HOME/fastmlp``, else ``~/.cache/fastmlp``.
    url : str or sequence of str, optional
        Base URL(s) to download from, in place of the built-in mirrors
        (``<url>/train-images-idx3-ubyte.gz`` and so on). Default:
        ``$FASTMLP_MNIST_URL`` (digits) or ``$FASTMLP_FASHION_MNIST_URL``
        (fashion), whitespace-separated, else the built-in mirrors.
    verify : bool, default True
        Check every ``.gz`` file read against its published SHA-256. Raw
        (decompressed) files are not hashed; their IDX headers are always
        checked. Downloads are always verified.
    timeout : float, default 30.0
        Seconds to wait for a mirror to answer before trying the next.

    Returns
    -------
    (X_train, y_train), (X_test, y_test)
        X arrays are uint8 of shape (n, 784) (each row a 28x28 picture, row
        by row, 0 = background); y arrays are uint8 class ids 0-9. For the
        published files n is 60000 and 10000. Scale with ``X / 255`` (or
        standardize) before training.

    Raises
    ------
    FileNotFoundError
        The files are nowhere to be found and could not be downloaded
        (offline, or ``download=False``): the message lists the file names,
        where they were looked for and where to put them. Also when ``path``
        is given but lacks a file.
    ValueError
        ``kind`` is not "digits" or "fashion"; a file does not match its
        SHA-256 (a download that does not is deleted first); a file is not
        a valid IDX file of the expected kind (magic number, 28x28 images,
        uint8 labels 0-9, as many labels as images), naming the file.

    Notes
    -----
    The first argument used to be ``path``; a folder passed there is still
    accepted, with a DeprecationWarning.
    """
    if kind is None or not isinstance(kind, str) or kind not in _MNIST:
        folder_like = kind is None or isinstance(kind, os.PathLike) or (
            isinstance(kind, str) and (os.sep in kind or Path(kind).is_dir()))
        if not folder_like:
            raise ValueError(f"kind: expected 'digits' or 'fashion', got {kind!r}")
        if path is not None:
            raise TypeError(f"load_mnist: kind={kind!r} is a folder and path= is given too")
        warnings.warn("load_mnist(folder) is deprecated: the first argument is now kind "
                      "('digits' or 'fashion'); pass the folder as path=", DeprecationWarning,
                      stacklevel=2)
        kind, path = "digits", kind
    source = _MNIST[kind]
    folder = _locate(source, path, cache_dir, download, url, timeout, "load_mnist")

    out = {}
    for name in source.sha256:
        file = _present(folder, name)
        if file is None:  # removed since _locate looked
            raise FileNotFoundError(f"path: {folder} has neither {name} nor {name[:-3]}")
        if verify and file.suffix == ".gz":
            _check_sha256(file, source.sha256[name], source.title)
        a = read_idx(file)
        stem = name[:-3]
        if _MNIST_STEMS[stem] == "images":
            if a.dtype != np.uint8 or a.ndim != 3 or a.shape[1:] != (28, 28):
                raise ValueError(
                    f"path: {file} is not an MNIST image file: expected IDX magic 2051 "
                    f"(uint8, 3 dimensions) of n x 28 x 28, got {a.dtype} {a.shape}")
        else:
            if a.dtype != np.uint8 or a.ndim != 1:
                raise ValueError(
                    f"path: {file} is not an MNIST label file: expected IDX magic 2049 "
                    f"(uint8, 1 dimension), got {a.dtype} {a.shape}")
            if a.size and a.max() > 9:
                raise ValueError(f"path: {file} holds label {int(a.max())}, expected 0-9")
        out[stem] = (file, a)

    result = []
    for split in ("train", "t10k"):
        img_file, images = out[f"{split}-images-idx3-ubyte"]
        lbl_file, labels = out[f"{split}-labels-idx1-ubyte"]
        if len(images) != len(labels):
            raise ValueError(f"path: {img_file} holds {len(images)} images but {lbl_file} "
                             f"holds {len(labels)} labels")
        result.append((images.reshape(len(images), -1), labels))
    return tuple(result)


_HOUSING_COLUMNS = ("longitude", "latitude", "housing_median_age", "total_rooms",
                    "total_bedrooms", "population", "households", "median_income",
                    "median_house_value", "ocean_proximity")


def _read_housing_csv(file):
    """(X, y, feature_names) of housing.csv; ValueError naming the file and
    line for anything that is not the housing CSV."""
    with open(file, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = [h.strip() for h in next(reader, [])]
        absent = [c for c in _HOUSING_COLUMNS if c not in header]
        if absent:
            raise ValueError(f"path: {file} is not the California housing CSV: no column(s) "
                             f"{', '.join(absent)} in its header {header}")
        cat_col = header.index("ocean_proximity")
        target_col = header.index("median_house_value")
        num_cols = [i for i in range(len(header)) if i not in (cat_col, target_col)]
        num, y, cats = [], [], []
        for row in reader:
            if not "".join(row).strip():
                continue
            line = reader.line_num
            if len(row) != len(header):
                raise ValueError(f"path: {file} line {line} has {len(row)} fields, its header "
                                 f"has {len(header)}")
            try:
                num.append([float(row[i]) if row[i].strip() else np.nan for i in num_cols])
                y.append(float(row[target_col]))
            except ValueError:
                raise ValueError(f"path: {file} line {line}: expected numbers (an empty field "
                                 f"only in the feature columns), got {row}") from None
            cats.append(row[cat_col])
    if not y:
        raise ValueError(f"path: {file} has no data rows")
    num = np.array(num)
    # 207 total_bedrooms are missing in the published file: the column median
    # fills them (a column with no values at all cannot be filled).
    empty = [header[num_cols[j]] for j in np.flatnonzero(np.isnan(num).all(axis=0))]
    if empty:
        raise ValueError(f"path: {file} has no values in column(s) {', '.join(empty)}")
    num = np.where(np.isnan(num), np.nanmedian(num, axis=0), num)
    categories = sorted(set(cats))
    onehot = (np.array(cats)[:, None] == np.array(categories)[None, :]).astype(np.float64)
    X = np.hstack([num, onehot])
    names = [header[i] for i in num_cols] + [f"ocean_proximity={c}" for c in categories]
    return X, np.array(y), names


def load_california_housing(path=None, *, download=True, cache_dir=None, url=None, verify=True,
                            timeout=30.0):
    """The California housing data (1990 census block groups), ready for a network.

    Reads ``housing.csv`` of Géron's *Hands-On Machine Learning*
    (ageron/handson-ml2: 20640 districts, 207 missing ``total_bedrooms``, a
    categorical ``ocean_proximity``) from the first of: ``path``;
    ``$FASTMLP_DATA/california-housing`` (or ``$FASTMLP_DATA`` itself); the
    cache folder ``<cache>/california-housing``, downloading it there once
    when ``download`` is true.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The CSV file itself, or a folder that holds ``housing.csv`` (or a
        ``california-housing/`` subfolder that does). When given, nothing
        else is searched and nothing is downloaded.
    download : bool, default True
        Fetch the file into the cache when it is nowhere else; it is written
        to a temporary file, checked against its published SHA-256, then
        renamed into place.
    cache_dir : str or os.PathLike, optional
        Root of the cache (the file goes to its ``california-housing/``
        subfolder). Default: ``$FASTMLP_CACHE``, else
        ``$XDG_CACHE_HOME/fastmlp``, else ``~/.cache/fastmlp``.
    url : str or sequence of str, optional
        Base URL(s) (or full URLs ending in ``housing.csv``) to download
        from, in place of the built-in GitHub URLs. Default:
        ``$FASTMLP_HOUSING_URL``, whitespace-separated, else the built-ins.
    verify : bool, default True
        Check the file read against the published SHA-256 of housing.csv;
        pass False to read a modified copy. Downloads are always verified.
    timeout : float, default 30.0
        Seconds to wait for a server to answer before trying the next.

    Returns
    -------
    X : ndarray of shape (n, 13), float64
        The eight numeric columns in file order (longitude, latitude,
        housing_median_age, total_rooms, total_bedrooms, population,
        households, median_income; missing total_bedrooms filled with the
        column median), then ``ocean_proximity`` one-hot encoded over its
        sorted categories.
    y : ndarray of shape (n,), float64
        median_house_value in dollars (capped at 500001 in the source).
    feature_names : list of str
        The 13 column names of X (one-hot columns as
        ``"ocean_proximity=<category>"``).

    Raises
    ------
    FileNotFoundError
        The file is nowhere to be found and could not be downloaded
        (offline, or ``download=False``): the message says where it was
        looked for and where to put it. Also when ``path`` does not exist
        or holds no housing.csv.
    ValueError
        The file does not match its SHA-256 (a download that does not is
        deleted first), or is not the housing CSV (columns, field counts,
        numbers), naming the file.
    """
    p = None if path is None else Path(path)
    if p is not None and p.is_file():
        csv_file = p
    else:
        folder = _locate(_HOUSING, p, cache_dir, download, url, timeout,
                         "load_california_housing")
        csv_file = folder / "housing.csv"
    if verify:
        _check_sha256(csv_file, _HOUSING.sha256["housing.csv"], _HOUSING.title)
    return _read_housing_csv(csv_file)
