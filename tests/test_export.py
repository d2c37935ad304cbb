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
from anomalia.methods import available_methods

from .conftest import synthetic_images
from .test_models import fill_banks


def saved_run(directory: Path, method: str, channels: int, size: int) -> Path:
    """A run directory holding an untrained detector whose batch-norm statistics are not the
    defaults, so a graph exported in training mode (batch statistics) would not match."""
    torch.manual_seed(0)
    det = Detector(method, accelerator="cpu")
    det.model_config_, det.train_config_ = det.resolved_config()
    det.in_channels_, det.image_size_ = channels, size
    det.model_ = det.model_config_.build(channels, size).eval()
    fill_banks(det.model_, channels, size)
    for module in det.model_.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    det.threshold_, det.threshold_rule_ = 0.125, "set by the test"
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
