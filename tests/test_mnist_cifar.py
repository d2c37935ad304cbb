"""MNIST and CIFAR-10: tiny fake files in the real formats; downloads are faked, never made."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from anomalia.data import fetch, registry
from anomalia.data.registry import CIFAR10, MNIST, load_dataset
from anomalia.data.types import IDX_FILES
from anomalia.errors import DataError

from .conftest import write_synthetic_idx

CIFAR_MEMBERS = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No env var, an empty cache, an empty system directory and no network."""
    import pooch

    def offline(**kwargs):
        raise ConnectionError("network unreachable")

    monkeypatch.delenv(fetch.ENV_VAR, raising=False)
    monkeypatch.setattr(fetch, "user_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(fetch, "SYSTEM_DATA_DIR", tmp_path / "system")
    monkeypatch.setattr(pooch, "retrieve", offline)
    return tmp_path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def pin(monkeypatch, spec, md5_gz):
    """Register ``spec`` with the checksums of the fake files instead of the real ones."""
    monkeypatch.setitem(registry.DATASETS, spec.name, dataclasses.replace(spec, md5_gz=md5_gz))


def cifar_batch(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Data as CIFAR-10 stores it: uint8 rows of 1024 red, 1024 green, 1024 blue values."""
    rng = np.random.default_rng(seed)
    data = np.zeros((n, 3072), dtype=np.uint8)
    data[:, :1024] = 200  # red plane
    data[:, 1024:2048] = rng.integers(0, 100, (n, 1024), dtype=np.uint8)
    return data, [int(v) for v in rng.integers(0, 10, n)]


def py2_pickle(data: np.ndarray, labels: list[int]) -> bytes:
    """Pickle a batch the way Python 2's cPickle wrote CIFAR-10's files (protocol 2, with
    Python 2 ``str`` for names and pixel bytes, numpy arrays by ``numpy.core.multiarray``)."""

    def text(raw: bytes) -> bytes:  # SHORT_BINSTRING or BINSTRING
        if len(raw) < 256:
            return b"U" + bytes([len(raw)]) + raw
        return b"T" + struct.pack("<i", len(raw)) + raw

    def integer(value: int) -> bytes:  # BININT
        return b"J" + struct.pack("<i", value)

    dtype = b"".join(
        [
            *(b"cnumpy\ndtype\n", text(b"u1"), integer(0), integer(1), b"\x87R"),  # dtype("u1")
            *(b"(", integer(3), text(b"|"), b"NNN", integer(-1), integer(-1), integer(0), b"tb"),
        ]
    )
    shape = integer(data.shape[0]) + integer(data.shape[1]) + b"\x86"
    array = b"".join(
        [
            *(b"cnumpy.core.multiarray\n_reconstruct\n", b"cnumpy\nndarray\n"),
            *(integer(0), b"\x85", text(b"b"), b"\x87R"),  # _reconstruct(ndarray, (0,), "b")
            *(b"(", integer(1), shape, dtype, b"\x89", text(data.tobytes()), b"tb"),  # setstate
        ]
    )
    label_list = b"](" + b"".join(integer(v) for v in labels) + b"e"
    return b"\x80\x02}(" + text(b"data") + array + text(b"labels") + label_list + b"u."


def write_cifar_tarball(path: Path, n: int = 3, payloads: dict | None = None) -> Path:
    """The python tarball's layout: cifar-10-batches-py/<member>, pickled with protocol 2."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payloads = payloads or {}
    with tarfile.open(path, "w:gz") as archive:
        for seed, member in enumerate(CIFAR_MEMBERS):
            body = payloads.get(member) or py2_pickle(*cifar_batch(n, seed))
            info = tarfile.TarInfo(f"cifar-10-batches-py/{member}")
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return path


# ------------------------------------------------------------------------------------- MNIST
def test_mnist_download_uses_pinned_md5s(isolated, monkeypatch):
    import pooch

    calls = []
    monkeypatch.setattr(pooch, "retrieve", lambda **kw: calls.append(kw))
    fetch.download(MNIST)
    assert {c["url"] for c in calls} == {
        f"https://ossci-datasets.s3.amazonaws.com/mnist/{stem}.gz" for stem in IDX_FILES.values()
    }
    assert {c["fname"]: c["known_hash"] for c in calls} == {
        "train-images-idx3-ubyte.gz": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "md5:d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "md5:9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    }


def test_mnist_gz_files_are_checked_against_the_pinned_md5(isolated):
    write_synthetic_idx(isolated / "fake", 2, 1)
    with pytest.raises(DataError, match=r"MD5 is [0-9a-f]{32}, expected") as info:
        load_dataset("mnist", isolated / "fake")
    assert "-ubyte.gz" in str(info.value)


def test_mnist_reads_matching_gz_files(isolated, monkeypatch):
    fake = write_synthetic_idx(isolated / "cache" / "mnist", 3, 2)
    pin(monkeypatch, MNIST, {s: md5(fake / f"{s}.gz") for s in IDX_FILES.values()})
    data = load_dataset("mnist")  # found in the user cache, no download
    assert data.train_images.shape == (30, 1, 16, 16) and data.test_images.shape == (20, 1, 16, 16)
    assert data.class_names == tuple("0123456789")


def test_mnist_uncompressed_files_are_read_unchecked(isolated):
    write_synthetic_idx(isolated / "raw", 2, 1, compress=False)
    data = load_dataset("mnist", isolated / "raw")
    assert data.name == "mnist" and data.train_images.shape == (20, 1, 16, 16)


def test_mnist_offline_without_copy(isolated):
    with pytest.raises(DataError, match="could not download mnist") as info:
        load_dataset("mnist")
    message = str(info.value)
    assert fetch.ENV_VAR in message and "anomalia download mnist" in message
    assert "apt-get" not in message  # no distribution package ships MNIST's files


# ---------------------------------------------------------------------------------- CIFAR-10
def test_cifar_download_uses_pinned_md5(isolated, monkeypatch):
    import pooch

    calls = []
    monkeypatch.setattr(pooch, "retrieve", lambda **kw: calls.append(kw))
    fetch.download(CIFAR10)
    assert len(calls) == 1
    assert calls[0]["url"] == "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    assert calls[0]["known_hash"] == "md5:c58f30108f718f92721af3b95e74349a"
    assert calls[0]["fname"] == "cifar-10-python.tar.gz"


def test_cifar_reads_the_tarball(isolated, monkeypatch):
    archive = write_cifar_tarball(isolated / "data" / "cifar-10-python.tar.gz", n=3)
    pin(monkeypatch, CIFAR10, {"cifar-10-python.tar.gz": md5(archive)})
    data = load_dataset("cifar10", isolated / "data")
    assert data.train_images.shape == (15, 3, 32, 32) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (3, 3, 32, 32)
    assert (data.train_images[:, 0] == 200).all()  # the first 1024 values are the red plane
    assert data.train_images[:, 1].max() < 100 and (data.train_images[:, 2] == 0).all()
    expected = [v for s in range(5) for v in cifar_batch(3, s)[1]]
    assert data.train_labels.tolist() == expected
    assert data.test_labels.tolist() == cifar_batch(3, 5)[1]
    assert data.class_names[0] == "airplane" and data.n_classes == 10


def test_cifar_found_in_the_cache_folder(isolated, monkeypatch):
    archive = write_cifar_tarball(isolated / "cache" / "cifar-10" / "cifar-10-python.tar.gz")
    pin(monkeypatch, CIFAR10, {"cifar-10-python.tar.gz": md5(archive)})
    assert load_dataset("cifar10").source == str(archive.parent)


def test_cifar_wrong_md5(isolated):
    write_cifar_tarball(isolated / "data" / "cifar-10-python.tar.gz")
    with pytest.raises(DataError, match=r"cifar-10-python\.tar\.gz: MD5 is"):
        load_dataset("cifar10", isolated / "data")


def test_cifar_offline_without_copy(isolated):
    with pytest.raises(DataError, match="could not download cifar10") as info:
        load_dataset("cifar10")
    assert "cifar-10-python.tar.gz" in str(info.value)
    with pytest.raises(DataError, match="no copy of cifar10 found") as info:
        load_dataset("cifar10", download_missing=False)
    assert "anomalia download cifar10" in str(info.value)


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (pickle.dumps({"data": _Exploit(), "labels": []}, protocol=2), "refusing to load"),
        (pickle.dumps({"labels": [1]}, protocol=2), "no data and labels"),
        (py2_pickle(np.zeros((2, 10), np.uint8), [0, 1]), r"expected uint8 \(N, 3072\)"),
        (py2_pickle(np.zeros((1, 3072), np.uint8), [10]), r"labels in 0\.\.9"),
        (py2_pickle(np.zeros((2, 3072), np.uint8), [1]), r"and labels \(1,\)"),
        (b"not a pickle at all", "not a CIFAR batch"),
    ],
    ids=["code", "no data", "bad shape", "bad label", "too few labels", "not a pickle"],
)
def test_cifar_bad_batches_are_refused(isolated, monkeypatch, capsys, payload, message):
    archive = isolated / "data" / "cifar-10-python.tar.gz"
    write_cifar_tarball(archive, payloads={"data_batch_3": payload})
    pin(monkeypatch, CIFAR10, {"cifar-10-python.tar.gz": md5(archive)})
    with pytest.raises(DataError, match=message) as info:
        load_dataset("cifar10", isolated / "data")
    assert "data_batch_3" in str(info.value)
    assert "must never run" not in capsys.readouterr().out


def test_cifar_not_a_tarball(isolated, monkeypatch):
    archive = isolated / "data" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(b"\x1f\x8b" + bytes(100))
    pin(monkeypatch, CIFAR10, {"cifar-10-python.tar.gz": md5(archive)})
    with pytest.raises(DataError, match="cannot read the CIFAR-10 tarball"):
        load_dataset("cifar10", isolated / "data")
