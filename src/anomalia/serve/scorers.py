"""What the service scores with: the :class:`Scorer` protocol and its two implementations.

The app sees only a Scorer: :class:`DetectorScorer` wraps a run's :class:`~anomalia.Detector`
(PyTorch); :class:`OnnxScorer` runs a model written by ``anomalia export`` with onnxruntime and
never imports torch (nothing in this module does at import time; the detector path imports it
when it loads a run).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

import anomalia
from anomalia.errors import ConfigError, DataError

#: The name ``anomalia export`` gives the ONNX file inside a run directory (``RunDir.ONNX``;
#: not imported from there because ``anomalia.rundir`` imports torch).
ONNX_NAME = "model.onnx"
_ONNX_METADATA = ("method", "in_channels", "image_size", "threshold", "threshold_rule")


@dataclass(frozen=True)
class ModelInfo:
    """The identity and input format of the model behind a :class:`Scorer`.

    Attributes:
        method: the anomalia method (``knn``, ``autoencoder``, ...).
        run: the run's name (its directory's name).
        source: ``run directory``, ``detector file`` or ``onnx``.
        in_channels: 1 (grayscale) or 3 (RGB); images are converted to it.
        image_size: the side every image is resized to.
        threshold: an image is an anomaly when ``score >= threshold``.
        threshold_rule: how the threshold was chosen.
        has_maps: the model makes anomaly maps.
        anomalia_version: the anomalia serving the model.
        trained_with: the anomalia version that trained it, when the run recorded it.
    """

    method: str
    run: str
    source: str
    in_channels: int
    image_size: int
    threshold: float
    threshold_rule: str
    has_maps: bool
    anomalia_version: str = anomalia.__version__
    trained_with: str | None = None

    @property
    def mode(self) -> str:
        """The Pillow mode images are converted to."""
        return "L" if self.in_channels == 1 else "RGB"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Scorer(Protocol):
    """Scores batches of images already converted to the model's format.

    Both methods take uint8 images (B, C, S, S) with C and S from :attr:`info` and may be
    called from several threads at once.
    """

    info: ModelInfo

    def score(self, images: np.ndarray) -> np.ndarray:
        """Anomaly scores (B,), float64, higher = more anomalous."""
        ...

    def anomaly_maps(self, images: np.ndarray) -> np.ndarray:
        """Anomaly maps (B, H, W), float, higher = more anomalous (``info.has_maps`` only)."""
        ...


def _check_batch(images: np.ndarray, info: ModelInfo) -> None:
    expected = (info.in_channels, info.image_size, info.image_size)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != expected:
        raise DataError(
            f"images must be uint8 (B, {expected[0]}, {expected[1]}, {expected[2]}), got "
            f"{images.dtype} {images.shape}"
        )


class DetectorScorer:
    """A fitted :class:`~anomalia.Detector` (PyTorch)."""

    def __init__(self, detector: Any, info: ModelInfo) -> None:
        self.detector = detector
        self.info = info

    @classmethod
    def from_detector(
        cls,
        detector: Any,
        run: str,
        source: str = "detector",
        trained_with: str | None = None,
    ) -> DetectorScorer:
        from anomalia.methods import get_method

        info = ModelInfo(
            method=detector.method,
            run=run,
            source=source,
            in_channels=int(detector.in_channels_),
            image_size=int(detector.image_size_),
            threshold=float(detector.threshold_),
            threshold_rule=str(detector.threshold_rule_),
            has_maps=get_method(detector.method).has_maps,
            trained_with=trained_with,
        )
        return cls(detector, info)

    def score(self, images: np.ndarray) -> np.ndarray:
        _check_batch(images, self.info)
        return np.asarray(self.detector.decision_function(images), dtype=np.float64)

    def anomaly_maps(self, images: np.ndarray) -> np.ndarray:
        _check_batch(images, self.info)
        return np.asarray(self.detector.anomaly_maps(images), dtype=np.float32)


class OnnxScorer:
    """A model written by ``anomalia export`` (``model.onnx``), run with onnxruntime on CPU.

    Reads method, channels, image size and threshold from the model's metadata; the model has
    maps when its graph has a ``maps`` output besides ``scores``.
    """

    def __init__(
        self, path: str | Path, run: str | None = None, n_threads: int | None = None
    ) -> None:
        try:
            import onnxruntime
        except ImportError:
            raise ConfigError(
                "serving an ONNX model needs onnxruntime: pip install 'anomalia[serve]'"
            ) from None
        path = Path(path)
        try:
            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3  # errors only
            if n_threads:
                options.intra_op_num_threads = n_threads
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:
            raise DataError(f"{path}: not a readable ONNX model ({err})") from err
        metadata = self.session.get_modelmeta().custom_metadata_map
        missing = [key for key in _ONNX_METADATA if key not in metadata]
        if missing:
            raise DataError(
                f"{path}: not a model written by anomalia export (metadata lacks "
                f"{', '.join(missing)})"
            )
        outputs = {o.name for o in self.session.get_outputs()}
        if "scores" not in outputs:
            raise DataError(f"{path}: the model has no 'scores' output (it has {sorted(outputs)})")
        try:
            self.info = ModelInfo(
                method=metadata["method"],
                run=run or (path.parent.name if path.name == ONNX_NAME else path.stem),
                source="onnx",
                in_channels=int(metadata["in_channels"]),
                image_size=int(metadata["image_size"]),
                threshold=float(metadata["threshold"]),
                threshold_rule=metadata["threshold_rule"],
                has_maps="maps" in outputs,
            )
        except ValueError as err:
            raise DataError(f"{path}: unreadable anomalia metadata ({err})") from err

    def _run(self, names: list[str], images: np.ndarray) -> list[np.ndarray]:
        _check_batch(images, self.info)
        x = images.astype(np.float32) / np.float32(255.0)  # as training data: uint8 / 255
        return list(self.session.run(names, {"images": x}))

    def score(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(["scores"], images)[0], dtype=np.float64)

    def anomaly_maps(self, images: np.ndarray) -> np.ndarray:
        if not self.info.has_maps:
            raise ConfigError(f"method {self.info.method!r} makes no anomaly maps")
        return np.asarray(self._run(["maps"], images)[0], dtype=np.float32)


def check_model_path(path: str | Path) -> Path:
    """Fail fast, before anything is loaded, when ``path`` cannot be a model: it must be an
    ONNX file, a saved detector file or a run directory holding ``model.pt``.

    Raises:
        DataError: naming what is missing.
    """
    path = Path(path)
    if path.is_file():
        return path
    if path.is_dir():
        from anomalia.rundir import RunDir

        RunDir(path).require(RunDir.MODEL, what="a run directory with a trained model")
        return path
    raise DataError(
        f"{path}: no such file or directory; give a run directory, its model.pt or an ONNX "
        "model written by anomalia export"
    )


def load_scorer(
    path: str | Path, accelerator: str = "auto", n_threads: int | None = None
) -> Scorer:
    """The scorer for ``path``: an ``.onnx`` file (onnxruntime, no torch), a run directory or a
    detector file written by :meth:`Detector.save` (PyTorch on ``accelerator``).

    Args:
        n_threads: threads one scoring call uses (onnxruntime's intra-op threads; for PyTorch
            ``torch.set_num_threads``, which holds for the whole process); None leaves the
            libraries' defaults (one per core).
    """
    path = Path(path)
    if path.is_file() and path.suffix.lower() == ".onnx":
        return OnnxScorer(path, n_threads=n_threads)
    check_model_path(path)
    import torch

    from anomalia.detector import Detector
    from anomalia.rundir import RunDir

    if n_threads:
        torch.set_num_threads(n_threads)

    if path.is_dir():
        run = RunDir(path)
        trained_with = run.read_info().get("versions", {}).get("anomalia")
        return DetectorScorer.from_detector(
            run.load_detector(accelerator), path.name, "run directory", trained_with
        )
    name = path.parent.name if path.name == RunDir.MODEL else path.stem
    return DetectorScorer.from_detector(Detector.load(path, accelerator), name, "detector file")
