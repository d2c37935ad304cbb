"""Behaviour of the user-facing Detector on small seeded synthetic data."""

import numpy as np
import pytest

from anomalia import Detector
from anomalia.errors import ConfigError, DataError, NotFittedError
from anomalia.evaluation import auroc
from anomalia.methods import available_methods, get_method

FAST = {"n_epochs": 3, "batch_size": 16, "progress_bar": False, "accelerator": "cpu"}


@pytest.fixture(scope="module")
def fitted(synthetic_split):
    d = synthetic_split
    return Detector("autoencoder", **FAST).fit(d["train_images"], d["train_targets"])


def test_not_fitted():
    with pytest.raises(NotFittedError, match="fit"):
        Detector().decision_function(np.zeros((2, 8, 8), dtype=np.uint8))


def test_unknown_parameter_is_named():
    with pytest.raises(ConfigError, match="latent_size"):
        Detector("autoencoder", latent_size=3).fit(np.zeros((4, 8, 8), dtype=np.uint8))


def test_unknown_method():
    with pytest.raises(ConfigError, match="unknown method 'vae'"):
        Detector("vae").fit(np.zeros((4, 8, 8), dtype=np.uint8))


@pytest.mark.parametrize(("param", "value"), [("n_epochs", 0), ("lr", -1.0), ("batch_size", 0)])
def test_bad_training_parameters(param, value):
    with pytest.raises(ConfigError, match=param):
        Detector("autoencoder", **{param: value}).fit(np.zeros((4, 8, 8), dtype=np.uint8))


@pytest.mark.parametrize(
    ("images", "labels", "match"),
    [
        (np.zeros((4, 8, 8), dtype=np.uint8), [0, 1], "one entry per image"),
        (np.zeros((4, 8, 8), dtype=np.uint8), [0, 1, 2, 0], "0 \\(normal"),
        (np.full((4, 8, 8), 3.0, dtype=np.float32), None, "\\[0, 1\\]"),
        (np.zeros((4, 8, 6), dtype=np.uint8), None, "square"),
        (np.zeros((4, 5, 8, 8), dtype=np.uint8), None, "C = 1 or 3"),
        ([[0.0]], None, "NumPy array or a torch tensor"),
    ],
)
def test_bad_input(images, labels, match):
    with pytest.raises(DataError, match=match):
        Detector("autoencoder", **FAST).fit(images, labels)


def test_scores_shape_and_floor(fitted, synthetic_split):
    scores = fitted.decision_function(synthetic_split["test_images"])
    assert scores.shape == (len(synthetic_split["test_images"]),)
    # Seeded synthetic stripes: observed ~0.99; the floor sits well below any seed's result.
    assert auroc(synthetic_split["test_labels"], scores) >= 0.85
    assert set(np.unique(fitted.predict(synthetic_split["test_images"]))) <= {0, 1}


def test_accepts_channels_last_and_float(fitted, synthetic_split):
    images = synthetic_split["test_images"][:5]
    a = fitted.decision_function(images)
    b = fitted.decision_function(images[..., None])
    c = fitted.decision_function(images.astype(np.float32) / 255)
    np.testing.assert_allclose(a, b)
    np.testing.assert_allclose(a, c, rtol=1e-5)


def test_wrong_image_size_for_fitted(fitted):
    with pytest.raises(DataError, match="trained on"):
        fitted.decision_function(np.zeros((2, 20, 20), dtype=np.uint8))


def test_same_seed_identical_scores_different_seed_different(synthetic_split):
    d = synthetic_split
    params = {**FAST, "n_epochs": 1}
    runs = [
        Detector("autoencoder", seed=s, **params)
        .fit(d["train_images"], d["train_targets"])
        .decision_function(d["test_images"])
        for s in (7, 7, 8)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.allclose(runs[0], runs[2])


def test_save_load_identical_scores(fitted, synthetic_split, tmp_path):
    fitted.save(tmp_path / "model.pt")
    loaded = Detector.load(tmp_path / "model.pt")
    images = synthetic_split["test_images"]
    np.testing.assert_array_equal(
        fitted.decision_function(images), loaded.decision_function(images)
    )
    assert loaded.threshold_ == fitted.threshold_


def test_load_rejects_other_files(tmp_path):
    (tmp_path / "x.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="not a readable"):
        Detector.load(tmp_path / "x.pt")
    with pytest.raises(DataError, match="no saved detector"):
        Detector.load(tmp_path / "missing.pt")


def test_loss_falls_and_logs_are_written(synthetic_split, tmp_path):
    import csv

    d = synthetic_split
    Detector("autoencoder", work_dir=tmp_path, **FAST).fit(
        d["train_images"],
        d["train_targets"],
        val_images=d["test_images"],
        val_labels=d["test_labels"],
    )
    rows = list(csv.DictReader((tmp_path / "logs" / "metrics.csv").open()))
    losses = [float(r["train/reconstruction"]) for r in rows if r.get("train/reconstruction")]
    assert len(losses) == 3
    assert losses[-1] < losses[0]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert any(r.get("val/auroc") for r in rows)


def test_threshold_from_validation_anomalies(synthetic_split):
    d = synthetic_split
    det = Detector("autoencoder", **FAST).fit(
        d["train_images"],
        d["train_targets"],
        val_images=d["test_images"],
        val_labels=d["test_labels"],
    )
    assert det.threshold_rule_ == "max F1 on validation"
    normals = d["test_labels"] == 0
    det2 = Detector("autoencoder", **FAST).fit(
        d["train_images"],
        d["train_targets"],
        val_images=d["test_images"][normals],
        val_labels=d["test_labels"][normals],
    )
    assert det2.threshold_rule_ == "0.95 quantile of validation normal scores"


#: per-method settings that let a 3-epoch run learn (Deep SAD needs epochs after pretraining)
METHOD_PARAMS = {"deep_sad": {"n_pretrain_epochs": 1}}


@pytest.mark.parametrize("method", available_methods())
def test_every_method_learns_saves_and_loads(method, synthetic_split, tmp_path):
    d = synthetic_split
    det = Detector(method, **FAST, **METHOD_PARAMS.get(method, {})).fit(
        d["train_images"],
        d["train_targets"],
        val_images=d["test_images"][::4],
        val_labels=d["test_labels"][::4],
    )
    scores = det.decision_function(d["test_images"])
    assert np.isfinite(scores).all()
    # Seeded synthetic stripes: the methods score ~1.0 here; the floor is far below.
    assert auroc(d["test_labels"], scores) >= 0.8
    det.save(tmp_path / "model.pt")
    loaded = Detector.load(tmp_path / "model.pt")
    np.testing.assert_array_equal(loaded.decision_function(d["test_images"]), scores)
    if get_method(method).reconstructs:
        assert loaded.reconstruct(d["test_images"][:2]).shape == (2, 1, 16, 16)
    else:
        with pytest.raises(ConfigError, match="does not reconstruct"):
            loaded.reconstruct(d["test_images"][:2])


def test_threshold_flags_the_validation_anomaly_that_sets_it(synthetic_split):
    d = synthetic_split
    val_images, val_labels = d["test_images"][::4], d["test_labels"][::4]
    det = Detector("knn").fit(
        d["train_images"], d["train_targets"], val_images=val_images, val_labels=val_labels
    )
    val_scores = det.decision_function(val_images)
    at_threshold = np.flatnonzero(val_scores == det.threshold_)
    assert len(at_threshold) and val_labels[at_threshold].all()  # an anomaly sets it ...
    assert det.predict(val_images)[at_threshold].all()  # ... and is flagged by predict


def test_threshold_without_validation_says_so_and_warns(synthetic_split):
    d = synthetic_split
    with pytest.warns(UserWarning, match="no validation data"):
        det = Detector("knn").fit(d["train_images"], d["train_targets"])
    assert det.threshold_rule_ == "0.95 quantile of training normal scores"


def test_negative_loss_weight_is_rejected():
    with pytest.raises(ConfigError, match=r"model\.abc_weight must be at least 0, got -1.0"):
        Detector("dual_gan", abc_weight=-1.0).fit(np.zeros((4, 8, 8), dtype=np.uint8))


def test_scoring_streams_in_batches(fitted, synthetic_split, monkeypatch):
    import anomalia.detector as detector_module

    seen = []
    original = detector_module.to_image_tensor

    def spy(images, *args, **kwargs):
        seen.append(len(images))
        return original(images, *args, **kwargs)

    monkeypatch.setattr(detector_module, "to_image_tensor", spy)
    monkeypatch.setattr(fitted.train_config_, "eval_batch_size", 64)
    images = np.broadcast_to(synthetic_split["test_images"][:1], (1000, 16, 16))  # no copy
    assert fitted.decision_function(images).shape == (1000,)
    assert max(seen) == 64 and sum(seen) == 1000
