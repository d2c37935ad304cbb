import numpy as np
import pytest

from anomalia.data import fetch
from anomalia.data.fetch import find_files
from anomalia.data.idx import write_idx
from anomalia.data.registry import FASHION_MNIST, get_dataset_spec, load_dataset
from anomalia.data.types import IDX_FILES
from anomalia.errors import DataError

from .conftest import write_synthetic_idx


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """No env var, an empty cache and an empty system directory."""
    monkeypatch.delenv(fetch.ENV_VAR, raising=False)
    monkeypatch.setattr(fetch, "user_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(fetch, "SYSTEM_DATA_DIR", tmp_path / "system")
    return tmp_path


def test_user_idx_dataset_reads_nchw(idx_dir):
    data = load_dataset("idx", idx_dir)
    assert data.train_images.shape == (800, 1, 16, 16)
    assert data.test_images.shape == (200, 1, 16, 16)
    assert data.train_images.dtype == np.uint8
    assert data.class_names == tuple(str(i) for i in range(10))
    assert sorted(np.unique(data.train_labels)) == list(range(10))


def test_search_order(isolated, monkeypatch):
    tmp = isolated
    for name in ("arg", "env", "cache/fashion-mnist", "system/fashion-mnist"):
        write_synthetic_idx(tmp / name, 2, 1)
    monkeypatch.setenv(fetch.ENV_VAR, str(tmp / "env"))
    assert find_files(FASHION_MNIST, tmp / "arg")["train_images"].parent == tmp / "arg"
    assert find_files(FASHION_MNIST)["train_images"].parent == tmp / "env"
    monkeypatch.delenv(fetch.ENV_VAR)
    assert find_files(FASHION_MNIST)["train_images"].parent == tmp / "cache" / "fashion-mnist"
    import shutil

    shutil.rmtree(tmp / "cache")
    assert find_files(FASHION_MNIST)["train_images"].parent == tmp / "system" / "fashion-mnist"


def test_missing_data_without_download_lists_options(isolated):
    with pytest.raises(DataError) as info:
        load_dataset("fashion_mnist", isolated / "nowhere", download_missing=False)
    message = str(info.value)
    for option in (
        "--data-dir",
        fetch.ENV_VAR,
        "apt-get install dataset-fashion-mnist",
        "anomalia download",
    ):
        assert option in message


def test_offline_download_failure_lists_options(isolated, monkeypatch):
    import pooch

    def offline(**kwargs):
        raise ConnectionError("network unreachable")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(DataError, match="could not download") as info:
        load_dataset("fashion_mnist")
    assert "ANOMALIA_DATA" in str(info.value)


def test_download_uses_pinned_checksums(isolated, monkeypatch):
    import pooch

    calls = []
    monkeypatch.setattr(pooch, "retrieve", lambda **kw: calls.append(kw))
    fetch.download(FASHION_MNIST)
    assert len(calls) == 4
    assert all(c["known_hash"].startswith("md5:") and len(c["known_hash"]) == 36 for c in calls)
    assert {c["fname"] for c in calls} == {f"{s}.gz" for s in IDX_FILES.values()}


def test_wrong_files_fail_fashion_mnist_checksums(isolated):
    write_synthetic_idx(isolated / "fake", 2, 1)
    with pytest.raises(DataError, match="SHA-256"):
        load_dataset("fashion_mnist", isolated / "fake")


def test_mismatched_image_and_label_counts(tmp_path):
    write_synthetic_idx(tmp_path, 3, 2)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(7, dtype=np.uint8))
    with pytest.raises(DataError, match="do not belong together"):
        load_dataset("idx", tmp_path)


def test_labels_file_with_images_shape(tmp_path):
    write_synthetic_idx(tmp_path, 3, 2)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros((30, 2), dtype=np.uint8))
    with pytest.raises(DataError, match="1-d array of integer labels"):
        load_dataset("idx", tmp_path)


def test_idx_dataset_needs_data_dir():
    with pytest.raises(DataError, match="--data-dir"):
        load_dataset("idx")


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'cifar' ; available".replace(" ;", ";")):
        load_dataset("cifar")


@pytest.mark.parametrize(
    ("name", "default"),
    [
        ("fashion_mnist", 0.05),
        ("mnist", 0.05),
        ("cifar10", 0.05),
        ("idx", 0.05),
        ("mvtec", None),
        ("folder", None),
    ],
)
def test_default_anomaly_ratio(name, default):
    spec = get_dataset_spec(name)
    assert spec.default_anomaly_ratio == default
    assert spec.reads_image_folders == (name in ("mvtec", "folder"))
