"""Nearest neighbours in blurred pixel space: anomalia's strongest Fashion-MNIST detector.

It has no trainable weights and therefore no ``loss.py``: "training" stores the blurred
training images in two memory banks (normals and labelled anomalies), as anomalib's
memory-bank models do. Why it is here and how its settings were chosen (on a split of the
training set, not the test set): docs/results.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.errors import ConfigError
from anomalia.models.common import check_weights
from anomalia.models.knn.torch_model import (
    KnnScorer,
    gaussian_blur,
    gaussian_kernel,
    knn_distance,
)


@dataclass
class KnnConfig:
    """Parameters of the nearest-neighbour detector.

    Attributes:
        k: neighbours averaged for each distance.
        blur_sigma: Gaussian blur (pixels) applied before comparing images; 0 = raw pixels.
            Blurring makes the distance tolerant of small shifts and texture noise
            (+1.6 AUROC points on Fashion-MNIST, training-split sweep in docs/results.md).
        feature_size: images larger than this are average-pooled to it (bounds the banks'
            memory: N x C x feature_size^2 floats).
        anomaly_weight: exponent of the distance to labelled anomalies in the score's
            denominator; 0 ignores labelled anomalies. 0.5 was best of 0-1 on a split of the
            Fashion-MNIST training set (docs/results.md).
    """

    k: int = 3
    blur_sigma: float = 1.0
    feature_size: int = 32
    anomaly_weight: float = 0.5

    score_name = "neighbour distance"  # class attribute: what the score is, for tables

    def __post_init__(self) -> None:
        check_weights(self)
        if self.k < 1:
            raise ConfigError(f"model.k must be at least 1, got {self.k}")
        if self.blur_sigma < 0:
            raise ConfigError(f"model.blur_sigma must be >= 0 (0 = no blur), got {self.blur_sigma}")
        if self.feature_size < 1:
            raise ConfigError(f"model.feature_size must be at least 1, got {self.feature_size}")

    def build(self, in_channels: int, image_size: int) -> KnnScorer:
        return KnnScorer(
            in_channels, image_size, self.k, self.blur_sigma, self.feature_size,
            self.anomaly_weight,
        )  # fmt: skip


__all__ = ["KnnConfig", "KnnScorer", "gaussian_blur", "gaussian_kernel", "knn_distance"]
