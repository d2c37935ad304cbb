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
from anomalia.models import ScoringModel
from anomalia.utils import atomic_open


class _ScoreModule(torch.nn.Module):
    """Exposes a scoring network's ``score`` (and, for a method with maps, ``score_and_map``)
    as ``forward``, the one method ONNX export traces."""

    def __init__(self, model: ScoringModel, with_maps: bool) -> None:
        super().__init__()
        self.model = model
        self.with_maps = with_maps

    def forward(self, images: torch.Tensor) -> Any:
        if self.with_maps:
            return self.model.score_and_map(images)
        return self.model.score(images)


def export_onnx(detector: Detector, output: str | Path, *, opset_version: int = 17) -> Path:
    """Write a fitted detector's scoring network as ONNX.

    The graph maps ``images``, float32 (B, C, S, S) in [0, 1], to ``scores`` (B,), higher = more
    anomalous, as :meth:`Detector.decision_function` (to float32 precision), and for a method
    with maps also to ``maps`` (B, S, S), as :meth:`Detector.anomaly_maps`. The batch size B is
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
    outputs = ["scores", "maps"] if detector.has_maps else ["scores"]
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        # Shape-dependent branches (padding, resizing) are traced for the run's fixed image
        # size, which the exported graph requires anyway.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The TorchScript exporter is deprecated but needs no extra package (onnxscript).
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript", DeprecationWarning
        )
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        # The nearest-neighbour search's slicing cannot be constant-folded; nothing to act on.
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        torch.onnx.export(
            _ScoreModule(detector.model_, detector.has_maps).cpu().eval(),
            (example,),
            Path(scratch) / "model.onnx",
            input_names=["images"],
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in ["images", *outputs]},
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
        "output": "anomaly score per image, higher = more anomalous"
        + ("; maps: anomaly map per image (batch, size, size)" if detector.has_maps else ""),
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_open(output, "wb") as handle:
        handle.write(model.SerializeToString())
    return output
