"""Shared fixtures: small synthetic datasets written in the real file formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anomalia.data.idx import write_idx

N_CLASSES = 10
IMAGE_SIZE = 16


def synthetic_images(labels: np.ndarray, seed: int, size: int = IMAGE_SIZE) -> np.ndarray:
    """uint8 images (N, size, size): each class is a stripe pattern of its own angle and period."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.empty((len(labels), size, size), dtype=np.uint8)
    for i, c in enumerate(labels):
        angle = np.pi * c / N_CLASSES
        period = 0.25 + 0.05 * (c % 3)
        phase = rng.uniform(0, 0.3)
        wave = np.sin(2 * np.pi * ((xx * np.cos(angle) + yy * np.sin(angle)) / period + phase))
        img = 0.5 + 0.4 * wave + rng.normal(0, 0.05, wave.shape)
        images[i] = np.clip(img * 255, 0, 255).astype(np.uint8)
    return images


def write_synthetic_idx(
    directory: Path,
    n_train_per_class: int = 80,
    n_test_per_class: int = 20,
    seed: int = 0,
    compress: bool = True,
) -> Path:
    """Write the four IDX files of a synthetic 10-class dataset into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compress else ""
    for split, n_per_class, split_seed in (
        ("train", n_train_per_class, seed),
        ("t10k", n_test_per_class, seed + 1),
    ):
        labels = np.repeat(np.arange(N_CLASSES, dtype=np.uint8), n_per_class)
        labels = np.random.default_rng(split_seed).permutation(labels)
        write_idx(
            directory / f"{split}-images-idx3-ubyte{suffix}", synthetic_images(labels, split_seed)
        )
        write_idx(directory / f"{split}-labels-idx1-ubyte{suffix}", labels)
    return directory


@pytest.fixture(scope="session")
def idx_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic 10-class dataset in gzip-compressed IDX files."""
    return write_synthetic_idx(tmp_path_factory.mktemp("idx"))


@pytest.fixture(scope="session")
def synthetic_split() -> dict[str, np.ndarray]:
    """Class 0 normal, a few labelled anomalies from the other classes, and a test set."""
    rng = np.random.default_rng(0)
    train_labels = np.r_[np.zeros(200, dtype=np.int64), rng.integers(1, N_CLASSES, 20)]
    test_labels = np.repeat(np.arange(N_CLASSES), 20)
    return {
        "train_images": synthetic_images(train_labels, 0),
        "train_targets": (train_labels != 0).astype(np.int64),
        "test_images": synthetic_images(test_labels, 1),
        "test_labels": (test_labels != 0).astype(np.int64),
    }
