"""Checks on the real Fashion-MNIST files; skipped where no local copy exists (never downloads)."""

import numpy as np
import pytest

from anomalia.data.fetch import find_files
from anomalia.data.protocol import make_split
from anomalia.data.registry import FASHION_MNIST, load_dataset

pytestmark = [
    pytest.mark.real_data,
    pytest.mark.skipif(
        find_files(FASHION_MNIST) is None,
        reason="Fashion-MNIST files not found (apt-get install dataset-fashion-mnist)",
    ),
]


@pytest.fixture(scope="module")
def fmnist():
    return load_dataset("fashion_mnist", download_missing=False)  # verifies SHA-256 checksums


def test_shapes_and_classes(fmnist):
    assert fmnist.train_images.shape == (60000, 1, 28, 28)
    assert fmnist.test_images.shape == (10000, 1, 28, 28)
    assert np.bincount(fmnist.train_labels).tolist() == [6000] * 10
    assert np.bincount(fmnist.test_labels).tolist() == [1000] * 10
    assert fmnist.class_names[6] == "Shirt"


def test_protocol_on_real_labels(fmnist):
    split = make_split(fmnist.train_labels, fmnist.test_labels, normal_class=0, anomaly_ratio=0.05)
    counts = split.counts()
    assert counts["train_normal_or_unlabelled"] + counts["val_normal_or_unlabelled"] == 6000
    assert counts["train_labelled_anomalies"] + counts["val_labelled_anomalies"] == 315
    assert counts["test_normal"] == 1000 and counts["test_anomalies"] == 9000


@pytest.mark.slow
def test_one_epoch_on_real_data_beats_floor(fmnist):
    from anomalia import Detector
    from anomalia.evaluation import auroc

    split = make_split(fmnist.train_labels, fmnist.test_labels, normal_class=1, anomaly_ratio=0.05)
    det = Detector("autoencoder", n_epochs=1, progress_bar=False, accelerator="cpu")
    det.fit(fmnist.train_images[split.train_indices], split.train_targets)
    test = np.r_[np.flatnonzero(fmnist.test_labels == 1), np.arange(0, 10000, 10)]
    labels = (fmnist.test_labels[test] != 1).astype(int)
    # Trouser after one epoch scores ~0.98; the floor leaves room for any seed and platform.
    assert auroc(labels, det.decision_function(fmnist.test_images[test])) >= 0.85
