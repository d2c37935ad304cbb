"""The nearest-neighbour detector: distances, the score, banks, fitting and persistence."""

import numpy as np
import pytest
import torch

from anomalia import Detector
from anomalia.errors import ConfigError
from anomalia.evaluation import auroc
from anomalia.models.knn import KnnConfig, KnnScorer, gaussian_blur, gaussian_kernel, knn_distance

FAST = {"batch_size": 16, "progress_bar": False, "accelerator": "cpu"}


def test_knn_distance_matches_brute_force_across_chunks():
    gen = torch.Generator().manual_seed(0)
    queries, bank = torch.rand(7, 5, generator=gen), torch.rand(23, 5, generator=gen)
    brute = torch.cdist(queries, bank).sort(dim=1).values[:, :3].mean(dim=1)
    torch.testing.assert_close(knn_distance(queries, bank, k=3, chunk=4), brute)
    skipped = torch.cdist(queries, bank).sort(dim=1).values[:, 1:4].mean(dim=1)
    torch.testing.assert_close(knn_distance(queries, bank, k=3, skip=1, chunk=4), skipped)
    # k larger than the bank: every entry is used
    full = torch.cdist(queries, bank[:2]).mean(dim=1)
    torch.testing.assert_close(knn_distance(queries, bank[:2], k=3), full)


def test_blur_keeps_constant_images_and_mass():
    row = gaussian_kernel(1.0).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    constant = torch.full((2, 3, 9, 9), 0.7)
    torch.testing.assert_close(gaussian_blur(constant, row), constant)
    dot = torch.zeros(1, 3, 15, 15)
    dot[..., 7, 7] = 1.0
    blurred = gaussian_blur(dot, row)
    assert blurred.shape == dot.shape
    assert blurred[..., 7, 7].max() < 1 and blurred.sum().item() == pytest.approx(3.0, rel=1e-5)


def test_score_formula_with_and_without_labelled_anomalies():
    model = KnnScorer(1, 4, k=1, blur_sigma=0.0, anomaly_weight=0.5)
    normal, anomaly = torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    x = torch.full((1, 1, 4, 4), 0.25)  # distance 1 to the normal, 3 to the anomaly
    model.set_banks(model.features(normal), model.features(anomaly)[:0])
    assert model.score(x).item() == pytest.approx(1.0)
    model.set_banks(model.features(normal), model.features(anomaly))
    assert model.score(x).item() == pytest.approx(1.0 / 3.0**0.5, rel=1e-5)
    model.anomaly_weight = 0.0
    assert model.score(x).item() == pytest.approx(1.0)


def test_banks_drop_duplicates_and_self_matches_can_be_left_out():
    model = KnnScorer(1, 4, k=1, blur_sigma=0.0)
    images = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    repeated = model.features(torch.cat([images, images[:2]]))
    model.set_banks(repeated, repeated[:0])
    assert len(model.normal_bank) == 6
    assert torch.all(model.score(images) < 1e-3)  # each is its own nearest neighbour
    assert torch.all(model.score(images, exclude_self=True) > 0.1)


def test_large_images_are_pooled_to_feature_size():
    model = KnnScorer(3, 64, feature_size=16)
    assert model.features(torch.rand(2, 3, 64, 64)).shape == (2, 3 * 16 * 16)


def test_unfitted_scorer_refuses_to_score():
    with pytest.raises(RuntimeError, match="bank is empty"):
        KnnScorer(1, 8).score(torch.rand(1, 1, 8, 8))


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("k", 0, "model.k"), ("blur_sigma", -1.0, "model.blur_sigma"),
     ("anomaly_weight", -0.5, "model.anomaly_weight"), ("feature_size", 0, "model.feature_size")],
)  # fmt: skip
def test_bad_parameters_are_named(key, value, message):
    with pytest.raises(ConfigError, match=message):
        KnnConfig(**{key: value})


def test_fit_scores_threshold_and_reload(synthetic_split, tmp_path):
    d = synthetic_split
    normals = d["train_images"][d["train_targets"] == 0]
    det = Detector("knn", **FAST).fit(normals)
    assert len(det.model_.normal_bank) == len(normals) and len(det.model_.anomaly_bank) == 0
    # Left-out scoring: the threshold is a real distance, not the 0 of self-matches.
    assert det.threshold_ > 0
    scores = det.decision_function(d["test_images"])
    # Seeded synthetic stripes: observed ~1.0; the floor sits well below.
    assert auroc(d["test_labels"], scores) >= 0.9
    assert not det.can_reconstruct
    det.save(tmp_path / "m.pt")
    loaded = Detector.load(tmp_path / "m.pt")
    np.testing.assert_array_equal(loaded.decision_function(d["test_images"]), scores)


def test_labelled_anomalies_raise_their_class_in_the_ranking():
    from scipy.stats import rankdata

    from .conftest import synthetic_images

    train_labels = np.r_[np.zeros(150, dtype=np.int64), np.full(15, 3)]  # k_l = 1: class 3
    images, targets = synthetic_images(train_labels, 0), (train_labels == 3).astype(np.int64)
    test_labels = np.repeat(np.arange(1, 10), 20)  # anomalies only: where does class 3 rank?
    test = synthetic_images(test_labels, 1)
    one_class = Detector("knn", **FAST).fit(images[targets == 0])
    semi = Detector("knn", **FAST).fit(images, targets)
    # The sampler re-draws anomalies many times per epoch; the bank keeps each once.
    assert len(semi.model_.anomaly_bank) == 15

    def percentile(det: Detector) -> float:
        return float(rankdata(det.decision_function(test))[test_labels == 3].mean() / len(test))

    assert percentile(semi) > percentile(one_class) + 0.1
