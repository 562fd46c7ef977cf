"""fastmlp.datasets: the IDX reader on files written here, bad files, where
the loaders look for their files and how they download them (from a local
HTTP server in a thread: these tests never touch the network), and the
MNIST / California housing files the README promises tests for
(../shared/data or $FASTMLP_DATA; skipped, saying why, when absent)."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import http.server
import shutil
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import fastmlp as fm
from conftest import shared_data_dir
from fastmlp import datasets

# Read once, before any test changes the environment.
SHARED = shared_data_dir()
MNIST_NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def _closed_port():
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _offline_and_private_cache(tmp_path, monkeypatch):
    # No test may reach the network or the user's cache: every download URL
    # points at a closed local port unless a test serves files itself, and
    # the cache is this test's own folder. FASTMLP_DATA is unset (a test that
    # wants it sets it).
    dead = f"http://127.0.0.1:{_closed_port()}/"
    for var in ("FASTMLP_MNIST_URL", "FASTMLP_FASHION_MNIST_URL", "FASTMLP_HOUSING_URL"):
        monkeypatch.setenv(var, dead)
    monkeypatch.setenv("FASTMLP_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTMLP_DATA", raising=False)
    for var in ("no_proxy", "NO_PROXY"):  # a proxy must not see 127.0.0.1
        monkeypatch.setenv(var, "127.0.0.1,localhost")

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


def _write_mnist(folder, n_train=5, n_test=3, gz=False, seed=0):
    rng = np.random.default_rng(seed)
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


def _sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class _Server:
    """A static file server on 127.0.0.1 in a thread, recording each request."""

    def __init__(self, root):
        self.requests = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                requests.append(self.path)
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def serve():
    """serve(folder) -> a _Server for that folder, shut down after the test."""
    servers = []

    def start(root):
        servers.append(_Server(root))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def fake_fashion(tmp_path, monkeypatch):
    """A small IDX set served as Fashion-MNIST: gzipped files in tmp/served,
    the table of expected hashes patched to theirs for this test only."""
    served = tmp_path / "served"
    served.mkdir()
    arrays = _write_mnist(served, n_train=7, n_test=4, gz=True, seed=1)
    fake = {name: _sha(served / name) for name in MNIST_NAMES}
    monkeypatch.setitem(datasets._MNIST, "fashion",
                        dataclasses.replace(datasets._MNIST["fashion"], sha256=fake))
    return served, arrays


def _assert_equal_sets(got, arrays):
    (Xtr, ytr), (Xte, yte) = got
    np.testing.assert_array_equal(Xtr, arrays["train-images-idx3-ubyte"].reshape(len(Xtr), -1))
    np.testing.assert_array_equal(ytr, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(Xte, arrays["t10k-images-idx3-ubyte"].reshape(len(Xte), -1))
    np.testing.assert_array_equal(yte, arrays["t10k-labels-idx1-ubyte"])


def test_the_real_hash_tables_are_the_published_ones():
    # Pinned here too, so that an edit of the tables shows in review.
    digits = datasets._MNIST["digits"].sha256
    assert digits["train-images-idx3-ubyte.gz"].startswith("440fcabf73cc546f")
    assert digits["t10k-labels-idx1-ubyte.gz"].startswith("f7ae60f92e00ec6d")
    fashion = datasets._MNIST["fashion"].sha256
    assert fashion["train-images-idx3-ubyte.gz"].startswith("3aede38d61863908")
    assert fashion["t10k-labels-idx1-ubyte.gz"].startswith("67da17c76eaffca5")
    assert list(digits) == list(fashion) == MNIST_NAMES
    assert datasets._HOUSING.sha256["housing.csv"].startswith("8a3727f4cf54ac1a")


def test_fashion_downloads_once_into_the_cache(tmp_path, fake_fashion, serve):
    served, arrays = fake_fashion
    server = serve(served)
    got = fm.datasets.load_mnist("fashion", url=server.url)
    _assert_equal_sets(got, arrays)
    assert sorted(server.requests) == sorted("/" + n for n in MNIST_NAMES)
    cache = tmp_path / "cache" / "fashion-mnist"  # $FASTMLP_CACHE/fashion-mnist
    assert sorted(p.name for p in cache.iterdir()) == sorted(MNIST_NAMES)  # no temp files left
    for name in MNIST_NAMES:
        assert _sha(cache / name) == _sha(served / name)
    assert not (tmp_path / "cache" / "mnist").exists()  # digits are elsewhere
    # the second call reads the cache and asks the server for nothing
    _assert_equal_sets(fm.datasets.load_mnist("fashion", url=server.url), arrays)
    assert len(server.requests) == 4


def test_the_url_environment_variable_and_cache_dir_argument(tmp_path, fake_fashion, serve,
                                                           monkeypatch):
    served, arrays = fake_fashion
    server = serve(served)
    monkeypatch.setenv("FASTMLP_FASHION_MNIST_URL", server.url)
    _assert_equal_sets(fm.datasets.load_mnist("fashion", cache_dir=tmp_path / "mine"), arrays)
    assert len(server.requests) == 4
    assert sorted(p.name for p in (tmp_path / "mine" / "fashion-mnist").iterdir()) == \
        sorted(MNIST_NAMES)
    assert not (tmp_path / "cache").exists()


def test_only_the_missing_files_are_downloaded(tmp_path, fake_fashion, serve):
    served, arrays = fake_fashion
    cache = tmp_path / "cache" / "fashion-mnist"
    cache.mkdir(parents=True)
    shutil.copy(served / "train-images-idx3-ubyte.gz", cache)
    shutil.copy(served / "t10k-labels-idx1-ubyte.gz", cache)
    server = serve(served)
    _assert_equal_sets(fm.datasets.load_mnist("fashion", url=server.url), arrays)
    assert sorted(server.requests) == ["/t10k-images-idx3-ubyte.gz",
                                       "/train-labels-idx1-ubyte.gz"]


def test_a_bad_mirror_is_skipped_for_the_next(tmp_path, fake_fashion, serve):
    served, arrays = fake_fashion
    bad = tmp_path / "bad"
    bad.mkdir()
    _write_mnist(bad, n_train=7, n_test=4, gz=True, seed=2)  # other content: other hashes
    bad_server, good_server = serve(bad), serve(served)
    dead = f"http://127.0.0.1:{_closed_port()}/"
    got = fm.datasets.load_mnist("fashion", url=[dead, bad_server.url, good_server.url])
    _assert_equal_sets(got, arrays)
    assert len(bad_server.requests) == 4
    assert len(good_server.requests) == 4


def test_a_download_that_fails_its_sha256_is_deleted_and_named(tmp_path, fake_fashion, serve):
    served, _ = fake_fashion
    name = "train-labels-idx1-ubyte.gz"
    expected = _sha(served / name)
    (served / name).write_bytes(gzip.compress(b"not the file"))  # the server now serves this
    got = _sha(served / name)
    server = serve(served)
    with pytest.raises(ValueError, match=rf"{name}.*SHA-256.*deleted.*expected SHA-256 "
                                         rf"{expected}, got {got}"):
        fm.datasets.load_mnist("fashion", url=server.url)
    cache = tmp_path / "cache" / "fashion-mnist"
    assert name not in {p.name for p in cache.iterdir()}
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp file either


def test_the_real_digits_hashes_refuse_other_files(tmp_path, serve):
    # No patched table: fake files served as MNIST digits fail the published SHA-256.
    served = tmp_path / "served"
    served.mkdir()
    _write_mnist(served, gz=True)
    server = serve(served)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz.*expected SHA-256 "
                                         r"440fcabf73cc546f"):
        fm.datasets.load_mnist(url=server.url)
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_offline_without_files_says_where_to_put_them(tmp_path):
    # The autouse fixture points every URL at a closed port: offline.
    for kind, sub in (("digits", "mnist"), ("fashion", "fashion-mnist")):
        with pytest.raises(FileNotFoundError) as e:
            fm.datasets.load_mnist(kind, timeout=5)
        message = str(e.value)
        assert "could not be downloaded" in message
        assert "download failed:" in message
        for name in MNIST_NAMES:
            assert name in message
        assert f"put the files in {tmp_path / 'cache' / sub}" in message
        assert "FASTMLP_DATA" in message
        assert "path=" in message
        assert not any((tmp_path / "cache" / sub).iterdir())  # nothing left behind
    with pytest.raises(FileNotFoundError, match=r"(?s)housing\.csv.*put the files in "):
        fm.datasets.load_california_housing(timeout=5)


def test_download_false_asks_no_server(tmp_path, fake_fashion, serve):
    served, _ = fake_fashion
    server = serve(served)
    with pytest.raises(FileNotFoundError, match="download=False"):
        fm.datasets.load_mnist("fashion", url=server.url, download=False)
    assert server.requests == []
    with pytest.raises(FileNotFoundError, match="download=False"):
        fm.datasets.load_california_housing(url=server.url, download=False)


def test_lookup_order_path_then_fastmlp_data_then_cache_then_download(tmp_path, fake_fashion,
                                                                     serve, monkeypatch):
    served, downloaded = fake_fashion
    server = serve(served)
    # raw IDX files are not hashed, so each folder can hold its own set
    data, cache, explicit = tmp_path / "data", tmp_path / "cache", tmp_path / "explicit"
    (data / "fashion-mnist").mkdir(parents=True)
    (cache / "fashion-mnist").mkdir(parents=True)
    explicit.mkdir()
    in_data = _write_mnist(data / "fashion-mnist", seed=3)
    in_cache = _write_mnist(cache / "fashion-mnist", seed=4)
    in_explicit = _write_mnist(explicit, seed=5)
    monkeypatch.setenv("FASTMLP_DATA", str(data))

    _assert_equal_sets(fm.datasets.load_mnist("fashion", explicit, url=server.url), in_explicit)
    _assert_equal_sets(fm.datasets.load_mnist("fashion", url=server.url), in_data)
    monkeypatch.delenv("FASTMLP_DATA")
    _assert_equal_sets(fm.datasets.load_mnist("fashion", url=server.url), in_cache)
    assert server.requests == []
    shutil.rmtree(cache / "fashion-mnist")
    _assert_equal_sets(fm.datasets.load_mnist("fashion", url=server.url), downloaded)
    assert len(server.requests) == 4


def test_fastmlp_data_itself_holds_digits_but_never_fashion(tmp_path, fake_fashion, serve,
                                                          monkeypatch):
    served, downloaded = fake_fashion
    root = tmp_path / "data"
    root.mkdir()
    digits = _write_mnist(root, seed=6)  # MNIST's file names, in $FASTMLP_DATA itself
    monkeypatch.setenv("FASTMLP_DATA", str(root))
    _assert_equal_sets(fm.datasets.load_mnist(), digits)
    server = serve(served)
    _assert_equal_sets(fm.datasets.load_mnist("fashion", url=server.url), downloaded)


def test_explicit_path_may_be_the_data_root(tmp_path):
    (tmp_path / "mnist").mkdir()
    arrays = _write_mnist(tmp_path / "mnist")
    _assert_equal_sets(fm.datasets.load_mnist(path=tmp_path), arrays)


def test_explicit_path_never_downloads(tmp_path, fake_fashion, serve):
    served, _ = fake_fashion
    server = serve(served)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"path: .*empty.*train-images-idx3-ubyte"):
        fm.datasets.load_mnist("fashion", tmp_path / "empty", url=server.url)
    assert server.requests == []


def test_cache_folder_resolution(tmp_path, monkeypatch):
    root = datasets._cache_root
    assert root(tmp_path / "x") == tmp_path / "x"
    assert root(None) == tmp_path / "cache"  # $FASTMLP_CACHE, set by the autouse fixture
    monkeypatch.delenv("FASTMLP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert root(None) == tmp_path / "xdg" / "fastmlp"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert root(None) == tmp_path / "home" / ".cache" / "fastmlp"


def test_raw_and_gzipped_files_read_the_same(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "gz").mkdir()
    arrays = _write_mnist(tmp_path / "raw", seed=7)
    _write_mnist(tmp_path / "gz", gz=True, seed=7)
    raw = fm.datasets.load_mnist(path=tmp_path / "raw")
    gz = fm.datasets.load_mnist(path=tmp_path / "gz", verify=False)
    _assert_equal_sets(raw, arrays)
    _assert_equal_sets(gz, arrays)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_a_truncated_file_is_a_value_error_naming_it(tmp_path, gz):
    _write_mnist(tmp_path, gz=gz)
    name = "t10k-images-idx3-ubyte" + (".gz" if gz else "")
    data = (tmp_path / name).read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"^path: .*{name}"):
        fm.datasets.load_mnist(path=tmp_path, verify=False)


def _write_idx(path, a):
    path.write_bytes(idx_bytes(np.asarray(a), 0x08))


@pytest.mark.parametrize("case", ["labels as images", "images as labels", "not 28x28",
                                  "label 10", "counts differ"])
def test_mnist_headers_are_checked(tmp_path, case):
    arrays = _write_mnist(tmp_path)
    images, labels = tmp_path / "train-images-idx3-ubyte", tmp_path / "train-labels-idx1-ubyte"
    if case == "labels as images":
        _write_idx(images, arrays["train-labels-idx1-ubyte"])
        match = r"train-images-idx3-ubyte is not an MNIST image file.*magic 2051"
    elif case == "images as labels":
        _write_idx(labels, arrays["train-images-idx3-ubyte"])
        match = r"train-labels-idx1-ubyte is not an MNIST label file.*magic 2049"
    elif case == "not 28x28":
        _write_idx(images, np.zeros((5, 28, 27), np.uint8))
        match = r"train-images-idx3-ubyte is not an MNIST image file.*\(5, 28, 27\)"
    elif case == "label 10":
        _write_idx(labels, [1, 2, 10, 3, 4])
        match = r"train-labels-idx1-ubyte holds label 10"
    else:
        _write_idx(labels, [1, 2, 3, 4])
        match = r"train-images-idx3-ubyte holds 5 images but .*train-labels-idx1-ubyte holds 4"
    with pytest.raises(ValueError, match=match):
        fm.datasets.load_mnist(path=tmp_path)


def test_kind_is_checked_and_the_old_positional_path_still_works(tmp_path):
    with pytest.raises(ValueError, match=r"kind: expected 'digits' or 'fashion', got 'letters'"):
        fm.datasets.load_mnist("letters")
    arrays = _write_mnist(tmp_path)
    with pytest.warns(DeprecationWarning, match="pass the folder as path="):
        got = fm.datasets.load_mnist(tmp_path)
    _assert_equal_sets(got, arrays)
    with pytest.raises(TypeError, match="path= is given too"):
        fm.datasets.load_mnist(str(tmp_path), path=tmp_path)


def test_url_must_be_http_https_or_file(fake_fashion):
    with pytest.raises(ValueError, match="url: expected http"):
        fm.datasets.load_mnist("fashion", url="ftp://example.org/")


# ---------------------------------------------------------------------------
# California housing on files written here
# ---------------------------------------------------------------------------

HOUSING_HEADER = ("longitude,latitude,housing_median_age,total_rooms,total_bedrooms,"
                  "population,households,median_income,median_house_value,ocean_proximity")
HOUSING_ROWS = ["-122.23,37.88,41.0,880.0,129.0,322.0,126.0,8.3252,452600.0,NEAR BAY",
                "-121.5,38.5,20.0,1000.0,,500.0,200.0,3.0,150000.0,INLAND",
                "-118.3,34.0,30.0,2000.0,400.0,900.0,350.0,4.5,300000.0,<1H OCEAN"]


def _write_housing(path, header=HOUSING_HEADER, rows=HOUSING_ROWS):
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_housing_csv_parsing(tmp_path):
    csv = _write_housing(tmp_path / "housing.csv")
    with pytest.raises(ValueError, match=r"housing\.csv does not match the published SHA-256"):
        fm.datasets.load_california_housing(csv)
    for path in (csv, tmp_path):  # the file, or its folder
        X, y, names = fm.datasets.load_california_housing(path, verify=False)
        assert X.shape == (3, 11)
        assert names[:8] == HOUSING_HEADER.split(",")[:8]
        assert names[8:] == ["ocean_proximity=<1H OCEAN", "ocean_proximity=INLAND",
                             "ocean_proximity=NEAR BAY"]
        np.testing.assert_array_equal(y, [452600.0, 150000.0, 300000.0])
        assert X[1, 4] == 264.5  # the missing total_bedrooms: the median of 129 and 400
        np.testing.assert_array_equal(X[:, 8:], [[0, 0, 1], [0, 1, 0], [1, 0, 0]])


@pytest.mark.parametrize(("header", "rows", "match"), [
    ("a,b,c", HOUSING_ROWS, r"no column\(s\) longitude"),
    (HOUSING_HEADER, [*HOUSING_ROWS, "1,2,3"], r"line 5 has 3 fields, its header has 10"),
    (HOUSING_HEADER, [HOUSING_ROWS[0].replace("41.0", "old")], r"line 2: expected numbers"),
    (HOUSING_HEADER, [], "no data rows"),
], ids=["columns", "fields", "number", "no rows"])
def test_housing_csv_errors_name_the_file(tmp_path, header, rows, match):
    csv = _write_housing(tmp_path / "housing.csv", header, rows)
    with pytest.raises(ValueError, match=r"^path: .*housing\.csv.*" + match):
        fm.datasets.load_california_housing(csv, verify=False)


def test_housing_download_is_verified(tmp_path, serve):
    served = tmp_path / "served"
    served.mkdir()
    _write_housing(served / "housing.csv")
    server = serve(served)
    with pytest.raises(ValueError, match=r"housing\.csv.*expected SHA-256 8a3727f4cf54ac1a"):
        fm.datasets.load_california_housing(url=server.url)
    assert list((tmp_path / "cache" / "california-housing").iterdir()) == []
    assert server.requests == ["/housing.csv"]


# ---------------------------------------------------------------------------
# the real MNIST files
# ---------------------------------------------------------------------------

# Class counts of the published MNIST training and test sets.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="module")
def mnist():
    folder = None if SHARED is None else SHARED / "mnist"
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



def _needs_shared(sub):
    folder = None if SHARED is None else SHARED / sub
    if folder is None or not folder.is_dir():
        pytest.skip(f"{sub} not found: set FASTMLP_DATA or put the files in ../shared/data/{sub}")
    return folder


def test_mnist_downloads_once_from_a_local_mirror(tmp_path, serve, monkeypatch, mnist):
    # The real files, served by a local server: the published hashes pass.
    server = serve(_needs_shared("mnist"))
    monkeypatch.setenv("FASTMLP_MNIST_URL", server.url)
    got = fm.datasets.load_mnist()
    assert sorted(server.requests) == sorted("/" + n for n in MNIST_NAMES)
    for a, b in zip(got, mnist):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    assert sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir()) == sorted(MNIST_NAMES)
    (_, ytr), _ = fm.datasets.load_mnist()
    assert np.bincount(ytr, minlength=10).tolist() == TRAIN_COUNTS
    assert len(server.requests) == 4


def test_housing_downloads_once_from_a_local_mirror(tmp_path, serve):
    folder = _needs_shared("california-housing")
    server = serve(folder)
    X, y, names = fm.datasets.load_california_housing(url=server.url)
    assert X.shape == (20640, 13)
    assert y.shape == (20640,)
    assert names[7] == "median_income"
    assert y.min() >= 14999
    assert y.max() == 500001
    assert server.requests == ["/housing.csv"]
    assert _sha(tmp_path / "cache" / "california-housing" / "housing.csv") == \
        _sha(folder / "housing.csv")
    X2, y2, _ = fm.datasets.load_california_housing(url=server.url)
    assert server.requests == ["/housing.csv"]
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    # and FASTMLP_DATA's layout, as ../shared/data has it
    X3, _, _ = fm.datasets.load_california_housing(folder.parent)
    np.testing.assert_array_equal(X, X3)
