"""The self-supervised detector: its losses, and that it sees shapes rather than pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from anomalia import Detector
from anomalia.evaluation import auroc
from anomalia.models.knn import KnnConfig
from anomalia.models.self_supervised import (
    SelfSupervisedScorer,
    exposure_loss,
    rotate_quarters,
    rotation_loss,
)
from anomalia.models.self_supervised.torch_model import quarter_turn


def test_rotation_loss_and_exposure_by_hand():
    sure = torch.tensor([[10.0, 0.0, 0.0, 0.0], [0.0, 0.0, 10.0, 0.0]])[:, None]  # 1 member
    assert float(rotation_loss(sure, torch.tensor([0, 2]))) < 1e-3  # right and confident
    assert float(rotation_loss(sure, torch.tensor([1, 3]))) > 9.0  # wrong and confident
    # exposure: least, log 4, when the head is unsure; confident logits cost more
    assert float(exposure_loss(torch.zeros(3, 4))) == pytest.approx(np.log(4), rel=1e-6)
    assert float(exposure_loss(sure)) > 3.0
    # two members, one right and one wrong by 10 logits on each image: the mean, about 5
    both = torch.cat([sure, sure.roll(1, dims=2)], dim=1)  # (2 images, 2 members, 4)
    assert float(rotation_loss(both, torch.tensor([0, 2]))) == pytest.approx(5.0, abs=1e-3)


def test_rotate_quarters_turns_each_image_its_own_way():
    x = torch.zeros(4, 1, 3, 3)
    x[:, 0, 0, 2] = 1.0  # a dot in the top-right corner of every image
    turned = rotate_quarters(x, torch.tensor([0, 1, 2, 3]))
    # counter-clockwise quarter turns: top-right -> top-left -> bottom-left -> bottom-right
    corners = [(0, 2), (0, 0), (2, 0), (2, 2)]
    for image, (row, col) in zip(turned, corners, strict=True):
        assert image[0, row, col] == 1.0 and image.sum() == 1.0
    assert x[:, 0, 0, 2].eq(1.0).all()  # the input is left as it was


@pytest.mark.parametrize("quarters", [0, 1, 2, 3, 5, -1])
def test_quarter_turn_is_rot90(quarters):
    x = torch.rand(2, 3, 5, 5)
    torch.testing.assert_close(quarter_turn(x, quarters), torch.rot90(x, quarters, dims=(2, 3)))


def test_scoring_path_gives_the_plain_networks_numbers():
    # In eval mode the encoder runs channels-last with batch norm folded into the
    # convolutions (faster on CPU); its features must be those of the plain modules, and
    # training must run the plain modules (batch statistics, running averages updated).
    torch.manual_seed(0)
    scorer = SelfSupervisedScorer(3, 20, width=8)
    x = torch.rand(6, 3, 20, 20)
    norm = scorer.encoder.net[0][1]
    scorer.train()
    scorer.encoder(x)
    assert norm.num_batches_tracked == 1 and not torch.equal(norm.running_mean, torch.zeros(8))
    scorer.eval()
    with torch.no_grad():
        for images in (x, quarter_turn(x, 1)):  # (a turned view is not contiguous)
            plain = scorer.encoder.net(images).mean(dim=(2, 3))
            torch.testing.assert_close(scorer.encoder(images), plain, rtol=1e-5, atol=1e-6)
    assert norm.num_batches_tracked == 1  # scoring changed no statistics


def _member(ensemble: SelfSupervisedScorer, m: int) -> SelfSupervisedScorer:
    """A one-network scorer holding member ``m``'s slice of every layer of ``ensemble``."""
    single = SelfSupervisedScorer(3, 20, width=ensemble.encoder.out_dim // 4)
    sliced = {}
    for name, tensor in ensemble.state_dict().items():
        target = single.state_dict()[name]
        if tensor.dim() == 0 or name in ("normal_bank", "anomaly_bank"):
            sliced[name] = tensor if tensor.dim() == 0 else target
        else:
            rows = target.shape[0]
            sliced[name] = tensor[m * rows : (m + 1) * rows]
    single.load_state_dict(sliced)
    return single


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_an_ensemble_is_its_members_side_by_side(mode):
    # Each member of a grouped ensemble computes exactly what a plain network with its
    # weights does (no member sees another's channels), in training (plain modules) and in
    # scoring (folded batch norm); the scores average the members, the features join them.
    torch.manual_seed(0)
    ensemble = SelfSupervisedScorer(3, 20, width=4, members=3)
    assert ensemble.feature_dim == 3 * 16
    members = [_member(ensemble, m) for m in range(3)]
    assert not torch.equal(members[0].rotation_head.weight, members[1].rotation_head.weight)
    x = torch.rand(5, 3, 20, 20)
    for net in [ensemble, *members]:
        net.train(mode == "train")
    with torch.no_grad():
        logits = ensemble.rotation_logits(x)
        assert logits.shape == (5, 3, 4)
        for m, single in enumerate(members):
            torch.testing.assert_close(logits[:, m], single.rotation_logits(x)[:, 0])
        if mode == "eval":
            scores = torch.stack([single.rotation_score(x) for single in members])
            torch.testing.assert_close(ensemble.rotation_score(x), scores.mean(dim=0))
            joined = torch.cat([single.features(x) for single in members], dim=1) / 3**0.5
            torch.testing.assert_close(ensemble.features(x), joined)
            torch.testing.assert_close(joined.norm(dim=1), torch.ones(5))


def test_ensemble_trains_saves_loads_and_exports(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnxruntime

    from anomalia.export import export_onnx

    rng = np.random.default_rng(0)
    images = np.concatenate([glyphs("T", 32, rng), glyphs("L", 4, rng)])
    labels = np.r_[np.zeros(32), np.ones(4)]
    settings = {"progress_bar": False, "accelerator": "cpu", "seed": 0, "n_epochs": 1}
    detector = Detector("self_supervised", members=2, width=4, batch_size=16, **settings)
    detector.fit(images, labels, val_images=images[:8])
    test = glyphs("L", 5, rng).astype(np.float32) / 255
    detector.save(tmp_path / "model.pt")
    loaded = Detector.load(tmp_path / "model.pt", accelerator="cpu")
    assert loaded.model_.members == 2
    np.testing.assert_array_equal(loaded.decision_function(test), detector.decision_function(test))
    session = onnxruntime.InferenceSession(
        str(export_onnx(loaded, tmp_path / "model.onnx")), providers=["CPUExecutionProvider"]
    )
    (onnx_scores,) = session.run(["scores"], {"images": test})
    np.testing.assert_allclose(onnx_scores, detector.decision_function(test), rtol=1e-4)


def glyphs(
    kind: str,
    n: int,
    rng: np.random.Generator,
    x_range: tuple[float, float] = (0.0, 1.0),
    channels: tuple[int, ...] = (0, 1, 2),
    size: int = 24,
) -> np.ndarray:
    """uint8 RGB images (n, 3, size, size): a "T" or an "L" of two bars, arms 6-8 pixels, at a
    random height and at a horizontal place drawn from ``x_range`` (shares of the free room),
    bright in one of ``channels`` over a dark, noisy background of random colour."""
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for i in range(n):
        arm = rng.uniform(6, 8)
        low, high = arm + 1, size - arm - 2
        cx, cy = low + (high - low) * rng.uniform(*x_range), rng.uniform(low, high)
        if kind == "T":
            bar = (abs(yy - (cy - arm)) <= 1) & (abs(xx - cx) <= arm)
            stem = (abs(xx - cx) <= 1) & (abs(yy - cy) <= arm)
        else:
            bar = (abs(yy - (cy + arm)) <= 1) & (abs(xx - cx) <= arm)
            stem = (abs(xx - (cx - arm)) <= 1) & (abs(yy - cy) <= arm)
        colour = np.full(3, 60.0)
        colour[rng.choice(channels)] = rng.uniform(170, 255)
        background = rng.uniform(0, 50, 3)
        image = np.where((bar | stem)[None], colour[:, None, None], background[:, None, None])
        out[i] = np.clip(image + rng.normal(0, 4, image.shape), 0, 255)
    return out


@pytest.mark.slow
def test_shifted_and_recoloured_normals_score_like_normals():
    """Normals are T shapes, trained on in the left half of the picture in red or green only;
    anomalies are L shapes. Unseen normals moved to the right half and coloured blue must rank
    below the anomalies: pixel knn cannot do that (0.59 here), the self-supervised
    detector must."""
    rng = np.random.default_rng(0)
    train = glyphs("T", 200, rng, x_range=(0.0, 0.5), channels=(0, 1))
    moved = glyphs("T", 50, rng, x_range=(0.5, 1.0), channels=(2,))
    anomalies = glyphs("L", 50, rng)
    test, labels = np.concatenate([moved, anomalies]), np.r_[np.zeros(50), np.ones(50)]
    settings = {"progress_bar": False, "accelerator": "cpu", "seed": 0}
    pixels = Detector("knn", **settings).fit(train)
    assert auroc(labels, pixels.decision_function(test)) < 0.7  # the task needs invariance
    detector = Detector("self_supervised", n_epochs=30, batch_size=64, **settings).fit(train)
    # floor well below the ~0.98 this seed reaches
    assert auroc(labels, detector.decision_function(test)) >= 0.85


def test_score_needs_pixels_exactly_when_fused():
    pixels = KnnConfig().build(1, 16)
    with pytest.raises(ValueError, match="fused"):
        SelfSupervisedScorer(1, 16, score="fused")
    with pytest.raises(ValueError, match="fused"):
        SelfSupervisedScorer(1, 16, score="rotation", pixels=pixels)
    assert "fusion_scale" not in SelfSupervisedScorer(1, 16).state_dict()  # old saves load


def test_fused_score_trains_saves_loads_and_exports(tmp_path):
    """The fused detector holds both scorers fitted and the spreads of their scores, scores
    with the sum of the scaled scores, and keeps those scores through save/load and ONNX."""
    pytest.importorskip("onnxruntime")
    import onnxruntime

    from anomalia.export import export_onnx

    rng = np.random.default_rng(0)
    images = np.concatenate([glyphs("T", 40, rng), glyphs("L", 6, rng)])
    labels = np.r_[np.zeros(40), np.ones(6)]
    settings = {"progress_bar": False, "accelerator": "cpu", "seed": 0, "n_epochs": 2}
    detector = Detector("self_supervised", score="fused", views="none", batch_size=16, **settings)
    detector.fit(images, labels, val_images=images[:8])
    model = detector.model_
    assert model.pixels is not None and model.fusion_scale is not None
    assert len(model.pixels.normal_bank) == 40 and len(model.pixels.anomaly_bank) == 6
    normals = torch.from_numpy(images[:40].astype(np.float32) / 255)
    with torch.no_grad():  # the pixel spread, computed at the first validation, is kept
        spreads = [model.rotation_score(normals).std(), model.pixels.score_training(normals).std()]
    torch.testing.assert_close(model.fusion_scale, torch.stack(spreads))

    test = glyphs("L", 5, rng).astype(np.float32) / 255
    x = torch.from_numpy(test)
    with torch.no_grad():
        by_hand = (
            model.rotation_score(x) / model.fusion_scale[0]
            + model.pixels.score(x) / model.fusion_scale[1]
        )
    np.testing.assert_allclose(detector.decision_function(test), by_hand.numpy(), rtol=1e-5)

    detector.save(tmp_path / "model.pt")
    loaded = Detector.load(tmp_path / "model.pt", accelerator="cpu")
    np.testing.assert_array_equal(loaded.decision_function(test), detector.decision_function(test))
    session = onnxruntime.InferenceSession(
        str(export_onnx(loaded, tmp_path / "model.onnx")), providers=["CPUExecutionProvider"]
    )
    (onnx_scores,) = session.run(["scores"], {"images": test})
    np.testing.assert_allclose(onnx_scores, detector.decision_function(test), rtol=1e-4)


def test_score_choice_leaves_training_alone():
    """Filling the banks before each validation (score: fused) runs the network in eval mode
    (batch-norm statistics untouched) and draws nothing from the global random stream, so the
    trained network is the same whichever score is chosen."""
    rng = np.random.default_rng(1)
    images, val = glyphs("T", 32, rng), glyphs("T", 8, rng)
    settings = {"progress_bar": False, "accelerator": "cpu", "seed": 0, "n_epochs": 2}
    weights = []
    for score in ("rotation", "fused"):
        detector = Detector("self_supervised", score=score, batch_size=16, **settings)
        detector.fit(images, val_images=val)
        weights.append(detector.model_.encoder.state_dict())
    for name, tensor in weights[0].items():
        torch.testing.assert_close(weights[1][name], tensor, rtol=0, atol=0)


def test_cli_end_to_end_on_photo_like_folders(tmp_path, capsys):
    """train -> predict -> export -> report on JPEG folders in MVTec's layout, the format the
    photo-like benchmark uses."""
    pytest.importorskip("onnxruntime")
    import onnxruntime

    from anomalia.cli import main
    from anomalia.data.photo import write_photo_like
    from tests.test_photo import tiny_data

    root = write_photo_like(tiny_data(8, 4), tmp_path / "photo", normal_class=1, seed=0).root
    args = ["train", "--method", "self_supervised", "--dataset", "mvtec", "--data-dir", str(root)]
    args += ["--anomaly-ratio", "0.2", "--n-known-anomaly-classes", "1", "--val-fraction", "0.25"]
    args += ["--n-epochs", "2", "--batch-size", "8", "--accelerator", "cpu", "--no-progress-bar"]
    assert main([*args, "--output-dir", str(tmp_path / "runs"), "--name", "e2e"]) == 0
    run = tmp_path / "runs" / "self_supervised" / "mvtec" / "class0" / "e2e"
    assert (run / "model.pt").is_file() and (run / "scores.csv").is_file()

    assert main(["predict", str(run), str(root / "test"), "--accelerator", "cpu"]) == 0
    rows = (run / "predictions.csv").read_text().splitlines()
    assert rows[0] == "path,score,is_anomaly" and len(rows) == 1 + 4 * 4

    assert main(["export", str(run), "--format", "onnx"]) == 0
    detector = Detector.load(run / "model.pt", accelerator="cpu")
    images = np.stack(_test_images(root))
    session = onnxruntime.InferenceSession(str(run / "model.onnx"))
    (onnx_scores,) = session.run(["scores"], {"images": images})
    np.testing.assert_allclose(onnx_scores, detector.decision_function(images), atol=1e-5)

    assert main(["report", str(run)]) == 0
    assert (run / "report.html").is_file()


def _test_images(root) -> list[np.ndarray]:
    """The test folder's JPEGs as float32 (3, S, S) in [0, 1], as ONNX takes them."""
    from PIL import Image

    out = []
    for path in sorted((root / "test").rglob("*.jpg")):
        with Image.open(path) as image:
            out.append(np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255)
    return out
