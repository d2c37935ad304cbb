"""`anomalia predict` and the detector's image-file input, on a tiny run trained in-process on
the synthetic IDX dataset."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomalia import Detector
from anomalia.cli import main
from anomalia.data import load_dataset
from anomalia.errors import DataError
from anomalia.experiment import predict_paths


@pytest.fixture(scope="module")
def run_dir(idx_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    args = ["train", "--dataset", "idx", "--data-dir", str(idx_dir), "--output-dir", str(out)]
    fast = ["--n-epochs", "1", "--no-plots", "--no-progress-bar", "--accelerator", "cpu"]
    assert main([*args, *fast, "--name", "tiny"]) == 0
    return out / "autoencoder" / "idx" / "class0" / "tiny"


@pytest.fixture(scope="module")
def images(idx_dir, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """Five normal (class 0) and five anomalous (class 5) test images saved as PNG files."""
    data = load_dataset("idx", idx_dir)
    picked = np.r_[
        np.flatnonzero(data.test_labels == 0)[:5], np.flatnonzero(data.test_labels == 5)[:5]
    ]
    folder = tmp_path_factory.mktemp("images")
    for i, index in enumerate(picked):
        Image.fromarray(data.test_images[index, 0]).save(folder / f"img{i:02d}.png")
    return folder, data.test_images[picked]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_predict_writes_scores_of_the_saved_detector(run_dir, images, capsys):
    folder, arrays = images
    assert main(["predict", str(run_dir), str(folder), "--accelerator", "cpu"]) == 0
    rows = read_rows(run_dir / "predictions.csv")
    assert [r["path"] for r in rows] == [str(folder / f"img{i:02d}.png") for i in range(10)]
    detector = Detector.load(run_dir / "model.pt", accelerator="cpu")
    expected = detector.decision_function(arrays)
    scores = np.array([float(r["score"]) for r in rows])
    np.testing.assert_allclose(scores, expected, rtol=1e-6)  # PNG is lossless: same pixels
    flags = [int(r["is_anomaly"]) for r in rows]
    assert flags == (expected >= detector.threshold_).astype(int).tolist()
    assert scores[5:].mean() > scores[:5].mean()  # class 5 stripes are anomalous
    out = capsys.readouterr().out
    assert f"scored 10 image(s): {sum(flags)} flagged as anomalies" in out
    assert f"threshold {detector.threshold_:.6g}" in out and "predictions.csv" in out


def test_files_globs_output_and_conversion(run_dir, images, tmp_path):
    folder, _ = images
    # a colour JPEG of another size is converted to gray and resized like training data
    colour = tmp_path / "colour.jpg"
    Image.new("RGB", (40, 30), (200, 30, 30)).save(colour)
    output = tmp_path / "out" / "p.csv"
    code = main(
        [
            "predict",
            str(run_dir),
            str(colour),
            str(folder / "img0[0-2].png"),
            "--output",
            str(output),
            "--batch-size",
            "2",
            "--accelerator",
            "cpu",
        ]
    )
    assert code == 0
    rows = read_rows(output)
    assert [Path(r["path"]).name for r in rows] == [
        "colour.jpg",
        "img00.png",
        "img01.png",
        "img02.png",
    ]
    assert all(np.isfinite(float(r["score"])) for r in rows)
    assert not (run_dir / "out").exists()


def test_streams_in_bounded_batches(run_dir, images, monkeypatch, tmp_path):
    folder, _ = images
    seen: list[int] = []
    original = Detector.decision_function

    def spy(self, batch):
        seen.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(Detector, "decision_function", spy)
    result = predict_paths(run_dir, [folder], tmp_path / "p.csv", batch_size=3, accelerator="cpu")
    assert seen == [3, 3, 3, 1] and result.n_images == 10


def test_bad_file_stops_or_is_skipped(run_dir, images, tmp_path, capsys):
    folder, _ = images
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    args = ["predict", str(run_dir), str(bad), str(folder), "--accelerator", "cpu"]
    assert main([*args, "--output", str(tmp_path / "a.csv")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "not a readable PNG, JPEG, BMP or TIFF image" in err
    assert not (tmp_path / "a.csv").exists()
    assert main([*args, "--output", str(tmp_path / "b.csv"), "--skip-bad-images"]) == 0
    out = capsys.readouterr().out
    assert f"skipped 1 unreadable file(s):\n  {bad}" in out and "scored 10 image(s)" in out
    assert len(read_rows(tmp_path / "b.csv")) == 10


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda run, tmp: [str(tmp), str(tmp)], "not a finished run directory"),
        (lambda run, tmp: [str(run), str(tmp / "missing.png")], "no such file or directory"),
        (lambda run, tmp: [str(run), str(tmp / "*.png")], "no file matches this pattern"),
        (lambda run, tmp: [str(run), str(tmp)], "no readable image among"),
        (lambda run, tmp: [str(run), str(tmp), "--batch-size", "0"], "batch_size must be"),
    ],
)
def test_usage_errors(run_dir, tmp_path, capsys, make_args, message):
    assert main(["predict", *make_args(run_dir, tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not list(run_dir.glob(".*.tmp"))  # no half-written CSV left behind


def test_detector_accepts_paths(run_dir, images):
    folder, arrays = images
    detector = Detector.load(run_dir / "model.pt", accelerator="cpu")
    expected = detector.decision_function(arrays)
    files = sorted(folder.glob("*.png"))
    np.testing.assert_allclose(detector.decision_function(folder), expected, rtol=1e-6)
    np.testing.assert_allclose(detector.decision_function(str(folder)), expected, rtol=1e-6)
    np.testing.assert_allclose(detector.decision_function(files[:2]), expected[:2], rtol=1e-6)
    pattern = [str(folder / "img0[5-9].png")]
    np.testing.assert_allclose(detector.decision_function(pattern), expected[5:], rtol=1e-6)
    assert detector.predict(files).tolist() == (expected > detector.threshold_).tolist()
    with pytest.raises(DataError, match="no image files found"):
        detector.decision_function([])


def test_predict_maps_writes_one_overlay_per_image(run_dir, images, tmp_path):
    folder, arrays = images
    maps_dir = tmp_path / "maps"
    output = tmp_path / "pred.csv"
    argv = ["predict", str(run_dir), str(folder), "--output", str(output), "--accelerator", "cpu"]
    assert main([*argv, "--maps", str(maps_dir), "--raw-maps", "--batch-size", "4"]) == 0
    rows = read_rows(output)
    assert len(rows) == 10 and all(Path(r["map"]).is_file() for r in rows)
    assert Path(rows[3]["map"]).name == "000003-img03.png"
    with Image.open(rows[0]["map"]) as picture:
        assert picture.mode == "RGB" and picture.size == (arrays.shape[-1], arrays.shape[-2])
    detector = Detector.load(run_dir / "model.pt", accelerator="cpu")
    expected_scores, expected_maps = detector.score_with_maps(arrays)
    raw = np.stack([np.load(Path(r["map"]).with_suffix(".npy")) for r in rows])
    np.testing.assert_allclose(raw, expected_maps, rtol=1e-5, atol=1e-7)
    scores = np.array([float(r["score"]) for r in rows])
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)  # same as without maps


def test_predict_maps_needs_a_method_with_maps(idx_dir, images, tmp_path, capsys):
    out = tmp_path / "runs"
    args = ["train", "--dataset", "idx", "--data-dir", str(idx_dir), "--output-dir", str(out)]
    fast = ["--method", "classifier", "--n-epochs", "1", "--no-plots", "--no-progress-bar"]
    assert main([*args, *fast, "--name", "clf", "--accelerator", "cpu"]) == 0
    run = out / "classifier" / "idx" / "class0" / "clf"
    code = main(["predict", str(run), str(images[0]), "--maps", str(tmp_path / "maps")])
    assert code == 2
    assert "method 'classifier' makes no anomaly maps; methods with maps: autoencoder" in (
        capsys.readouterr().err
    )
    assert not (run / "predictions.csv").exists()
