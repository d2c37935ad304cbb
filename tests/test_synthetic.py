"""The synthetic-defect dataset: seeded, masks exactly where pixels changed, readable with masks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomalia.benchmark import cells, load_benchmark_config
from anomalia.data import load_mvtec
from anomalia.data.synthetic import DEFECT_TYPES, render_sample, write_defect_dataset
from anomalia.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"n_train_good": 6, "n_train_defects": 2, "n_test_good": 3, "n_test_defects": 2}


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "defects"
    write_defect_dataset(root, **SMALL, size=32, seed=3)
    return root


def test_same_seed_writes_the_same_bytes(dataset, tmp_path):
    write_defect_dataset(tmp_path / "again", **SMALL, size=32, seed=3)
    assert files(tmp_path / "again") == files(dataset)
    write_defect_dataset(tmp_path / "other", **SMALL, size=32, seed=4)
    other = files(tmp_path / "other")
    assert other.keys() == files(dataset).keys()
    assert other["test/good/000.png"] != files(dataset)["test/good/000.png"]
    # each image has its own seed: more test images leave the others as they were
    write_defect_dataset(tmp_path / "more", **{**SMALL, "n_test_defects": 3}, size=32, seed=3)
    more = files(tmp_path / "more")
    assert {k: more[k] for k in files(dataset)} == files(dataset)
    assert "test/hole/002.png" in more


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("defect", DEFECT_TYPES)
def test_mask_is_exactly_the_changed_pixels(defect, size, channels):
    for seed in range(8):
        sample = render_sample(defect, np.random.default_rng(seed), size=size, channels=channels)
        assert sample.image.shape == sample.clean.shape == (channels, size, size)
        assert sample.mask.shape == (size, size) and sample.mask.dtype == np.uint8
        changed = (sample.image != sample.clean).any(axis=0)
        np.testing.assert_array_equal(changed, sample.mask.astype(bool))
        # small: a whole-image mean error barely moves
        assert 0.001 < sample.mask.mean() < 0.06


def test_normal_sample_has_no_mask_and_no_change():
    sample = render_sample(None, np.random.default_rng(0))
    assert not sample.mask.any() and np.array_equal(sample.image, sample.clean)
    # the objects vary: position, rotation and brightness differ between seeds
    other = render_sample(None, np.random.default_rng(1))
    assert not np.array_equal(sample.clean, other.clean)


def test_load_mvtec_reads_it_with_masks(dataset):
    data = load_mvtec(dataset)
    assert data.class_names == ("good", *DEFECT_TYPES)
    assert data.train_images.shape == (6 + 4 * 2, 3, 32, 32)
    assert data.test_images.shape == (3 + 4 * 2, 3, 32, 32)
    assert data.test_masks is not None and data.train_masks is not None
    assert data.test_masks.shape == (11, 32, 32) and data.train_masks.shape == (14, 32, 32)
    for labels, masks in (
        (data.test_labels, data.test_masks),
        (data.train_labels, data.train_masks),
    ):
        assert not masks[labels == 0].any()
        assert masks[labels > 0].reshape(int((labels > 0).sum()), -1).any(axis=1).all()
    # the files hold the rendered samples: image i of test/<kind> is seed (3, 1, kind, i)
    row = 3 + 2 * DEFECT_TYPES.index("scratch") + 1
    sample = render_sample("scratch", np.random.default_rng([3, 1, 3, 1]), size=32)
    np.testing.assert_array_equal(data.test_images[row], sample.image)
    np.testing.assert_array_equal(data.test_masks[row], sample.mask)
    on_disk = np.asarray(Image.open(dataset / "ground_truth" / "scratch" / "001_mask.png"))
    assert set(np.unique(on_disk).tolist()) == {0, 255}


def test_bad_arguments(tmp_path, dataset):
    with pytest.raises(DataError, match="not an empty folder"):
        write_defect_dataset(dataset, **SMALL)
    with pytest.raises(ConfigError, match="size must be at least 16"):
        write_defect_dataset(tmp_path / "a", size=8)
    with pytest.raises(ConfigError, match="channels must be 1"):
        write_defect_dataset(tmp_path / "a", channels=2)
    with pytest.raises(ConfigError, match="n_test_good must be at least 1, got 0"):
        write_defect_dataset(tmp_path / "a", n_test_good=0)
    with pytest.raises(ConfigError, match="defect must be one of hole, missing"):
        render_sample("dent", np.random.default_rng(0))


def test_without_training_defects(tmp_path):
    data = load_mvtec(
        write_defect_dataset(tmp_path / "d", **{**SMALL, "n_train_defects": 0}, size=16).root
    )
    assert set(data.train_labels.tolist()) == {0}
    assert data.train_masks is not None and not data.train_masks.any()


def test_script_and_grid(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "make_defects", ROOT / "benchmarks" / "make_defects.py"
    )
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = ["--out", str(tmp_path / "d"), "--size", "16", "--n-train-good", "4"]
    argv += ["--n-train-defects", "1", "--n-test-good", "2", "--n-test-defects", "1"]
    assert script.main(argv) == 0
    assert "train/good" in capsys.readouterr().out
    assert len(load_mvtec(tmp_path / "d").test_labels) == 2 + 4
    grid = load_benchmark_config(ROOT / "configs" / "benchmarks" / "defects.yaml")
    assert grid.base["data"]["dataset"] == "mvtec"
    ratios = {cell.anomaly_ratio for cell in cells(grid)}
    assert 0.0 in ratios and any(r > 0 for r in ratios)  # with and without labelled defects
