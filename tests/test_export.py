"""ONNX export: onnxruntime's scores equal PyTorch's for every registered method."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from anomalia import Detector
from anomalia.cli import main
from anomalia.experiment import export_run
from anomalia.methods import available_methods, get_method

from .conftest import synthetic_images
from .test_models import fill_banks


def saved_run(directory: Path, method: str, channels: int, size: int, **params) -> Path:
    """A run directory holding an untrained detector whose batch-norm statistics are not the
    defaults, so a graph exported in training mode (batch statistics) would not match."""
    torch.manual_seed(0)
    det = Detector(method, accelerator="cpu", **params)
    det.model_config_, det.train_config_ = det.resolved_config()
    det.in_channels_, det.image_size_ = channels, size
    det.model_ = det.model_config_.build(channels, size).eval()
    fill_banks(det.model_, channels, size)
    for module in det.model_.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    det.threshold_, det.threshold_rule_, det.map_scale_ = 0.125, "set by the test", None
    directory.mkdir(parents=True, exist_ok=True)
    det.save(directory / "model.pt")
    return directory


def images(n: int, channels: int, size: int) -> np.ndarray:
    """float32 (n, channels, size, size) in [0, 1]: stripes of several classes."""
    gray = synthetic_images(np.arange(n) % 10, seed=3, size=size).astype(np.float32) / 255
    return np.ascontiguousarray(np.repeat(gray[:, None], channels, axis=1))


@pytest.mark.parametrize(("channels", "size"), [(1, 16), (3, 20)])
@pytest.mark.parametrize("method", available_methods())
def test_onnxruntime_scores_equal_pytorch(tmp_path, method, channels, size):
    run_dir = saved_run(tmp_path / "run", method, channels, size)
    path = export_run(run_dir)
    assert path == run_dir / "model.onnx"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    detector = Detector.load(run_dir / "model.pt", accelerator="cpu")
    for n in (5, 1):  # exported with a batch of 2: the batch axis is dynamic
        x = images(n, channels, size)
        (scores,) = session.run(["scores"], {"images": x})
        expected = detector.decision_function(x)
        assert scores.shape == (n,)
        assert np.abs(scores - expected).max() < 1e-5
    outputs = [o.name for o in session.get_outputs()]
    assert outputs == (["scores", "maps"] if detector.has_maps else ["scores"])
    if detector.has_maps:
        x = images(3, channels, size)
        onnx_scores, onnx_maps = session.run(["scores", "maps"], {"images": x})
        scores, maps = detector.score_with_maps(x)
        assert onnx_maps.shape == (3, size, size) == maps.shape
        assert np.abs(onnx_maps - maps).max() < 1e-5 * max(1.0, float(np.abs(maps).max()))
        assert np.abs(onnx_scores - scores).max() < 1e-5


@pytest.mark.parametrize("method", [m for m in available_methods() if get_method(m).has_maps])
def test_onnx_map_scoring_matches_with_map_max(tmp_path, method):
    """With the image score read from the map, ONNX and PyTorch still agree."""
    run_dir = saved_run(tmp_path / "run", method, 1, 16, image_score="map_max")
    session = onnxruntime.InferenceSession(
        str(export_run(run_dir)), providers=["CPUExecutionProvider"]
    )
    detector = Detector.load(run_dir / "model.pt", accelerator="cpu")
    x = images(4, 1, 16)
    (scores,) = session.run(["scores"], {"images": x})
    expected = detector.decision_function(x)
    np.testing.assert_allclose(expected, detector.anomaly_maps(x).reshape(4, -1).max(1), rtol=1e-5)
    assert np.abs(scores - expected).max() < 1e-5


def test_cli_export_writes_metadata(tmp_path, capsys):
    run_dir = saved_run(tmp_path / "run", "autoencoder", 1, 16)
    output = tmp_path / "exported" / "scorer.onnx"
    assert main(["export", str(run_dir), "--format", "onnx", "--output", str(output)]) == 0
    assert str(output) in capsys.readouterr().out
    metadata = {p.key: p.value for p in onnx.load(output).metadata_props}
    assert float(metadata["threshold"]) == 0.125
    assert metadata["image_size"] == "16" and metadata["in_channels"] == "1"
    assert metadata["method"] == "autoencoder"
    assert metadata["decision"] == "anomaly when score >= threshold"
    assert not (run_dir / "model.onnx").exists()


def test_cli_export_needs_a_run(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "model.pt is missing" in capsys.readouterr().err
