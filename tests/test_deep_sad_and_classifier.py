"""Deep SAD and the supervised classifier: losses, the centre c, training behaviour."""

import numpy as np
import pytest
import torch

from anomalia import Detector
from anomalia.errors import ConfigError
from anomalia.evaluation import auroc
from anomalia.models.deep_sad import deep_sad_loss

FAST = {"batch_size": 16, "progress_bar": False, "accelerator": "cpu"}


def test_deep_sad_loss_by_hand():
    distance = torch.tensor([1.0, 4.0, 0.5, 2.0])
    targets = torch.tensor([0, 0, 1, 1])
    expected = (1.0 + 4.0 + 2.0 / 0.5 + 2.0 / 2.0) / 4  # eta = 2
    assert deep_sad_loss(distance, targets, eta=2.0, eps=0.0).item() == pytest.approx(expected)
    assert torch.isfinite(deep_sad_loss(torch.zeros(2), torch.tensor([1, 1])))


def test_centre_is_mean_encoding_pushed_away_from_zero(synthetic_split):
    d = synthetic_split
    det = Detector("deep_sad", n_epochs=2, n_pretrain_epochs=1, **FAST)
    det.fit(d["train_images"], d["train_targets"])
    c = det.model_.c
    assert (c.abs() >= 0.1 - 1e-7).all()
    assert c.abs().sum() > 0


def test_deep_sad_learns_and_reloads(synthetic_split, tmp_path):
    d = synthetic_split
    det = Detector("deep_sad", n_epochs=4, n_pretrain_epochs=2, **FAST)
    det.fit(d["train_images"], d["train_targets"])
    scores = det.decision_function(d["test_images"])
    # Seeded synthetic stripes: observed ~1.0; the floor sits well below.
    assert auroc(d["test_labels"], scores) >= 0.8
    det.save(tmp_path / "m.pt")
    loaded = Detector.load(tmp_path / "m.pt")
    np.testing.assert_array_equal(loaded.decision_function(d["test_images"]), scores)
    torch.testing.assert_close(loaded.model_.c, det.model_.c)


def test_deep_sad_needs_epochs_after_pretraining(synthetic_split):
    d = synthetic_split
    with pytest.raises(ConfigError, match=r"must exceed model\.n_pretrain_epochs"):
        Detector("deep_sad", n_epochs=2, n_pretrain_epochs=2, **FAST).fit(
            d["train_images"], d["train_targets"]
        )


def test_classifier_learns_known_anomalies(synthetic_split):
    d = synthetic_split
    det = Detector("classifier", n_epochs=3, **FAST).fit(d["train_images"], d["train_targets"])
    assert auroc(d["test_labels"], det.decision_function(d["test_images"])) >= 0.8
    assert not det.can_reconstruct
    with pytest.raises(ConfigError, match="does not reconstruct"):
        det.reconstruct(d["test_images"][:2])


def test_classifier_refuses_one_class_data(synthetic_split):
    d = synthetic_split
    normals = d["train_images"][d["train_targets"] == 0]
    with pytest.raises(ConfigError, match="learns from labelled anomalies"):
        Detector("classifier", n_epochs=1, **FAST).fit(normals)
