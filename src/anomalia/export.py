"""ONNX export of a fitted detector's scoring network.

Layer: beside the detector (it takes one), below the run directory and the CLI.
"""

from __future__ import annotations

import inspect
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from anomalia.detector import Detector
from anomalia.errors import ConfigError
from anomalia.utils import atomic_open


class _ScoreModule(torch.nn.Module):
    """Exposes a scoring network's ``score`` as ``forward``, the one method ONNX export traces."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.score(images)  # type: ignore[operator]


def export_onnx(detector: Detector, output: str | Path, *, opset_version: int = 17) -> Path:
    """Write a fitted detector's scoring network as ONNX.

    The graph maps ``images``, float32 (B, C, S, S) in [0, 1], to ``scores`` (B,), higher = more
    anomalous, as :meth:`Detector.decision_function` (to float32 precision). The batch size B is
    dynamic; the channels C and side S are the run's (convert and resize images as for
    training). The model's metadata holds ``threshold`` (flag an image when its score is at
    least that: ``score >= threshold``), ``threshold_rule``, ``method``, ``in_channels`` and
    ``image_size``. Needs the ``export`` extra (``pip install 'anomalia[export]'``).

    Raises:
        ConfigError: the ``onnx`` package is not installed.
    """
    try:
        import onnx
    except ImportError:
        raise ConfigError(
            "ONNX export needs the onnx package: pip install 'anomalia[export]'"
        ) from None
    output = Path(output)
    size = detector.image_size_
    example = torch.rand(2, detector.in_channels_, size, size)
    options: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # the TorchScript exporter: no extra dependency
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        # Shape-dependent branches (padding, resizing) are traced for the run's fixed image
        # size, which the exported graph requires anyway.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The TorchScript exporter is deprecated but needs no extra package (onnxscript).
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript", DeprecationWarning
        )
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        torch.onnx.export(
            _ScoreModule(detector.model_).cpu().eval(),
            (example,),
            Path(scratch) / "model.onnx",
            input_names=["images"],
            output_names=["scores"],
            dynamic_axes={"images": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=opset_version,
            **options,
        )
        model = onnx.load(Path(scratch) / "model.onnx")
    metadata = {
        "method": detector.method,
        "in_channels": str(detector.in_channels_),
        "image_size": str(size),
        "threshold": repr(float(detector.threshold_)),
        "threshold_rule": str(detector.threshold_rule_),
        "decision": "anomaly when score >= threshold",
        "input": "float32 images (batch, channels, size, size) in [0, 1]",
        "output": "anomaly score per image, higher = more anomalous",
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_open(output, "wb") as handle:
        handle.write(model.SerializeToString())
    return output
