"""Nearest neighbours in blurred pixel space: anomalia's strongest Fashion-MNIST detector.

It has no trainable weights and therefore no ``loss.py``: "training" stores the blurred
training images in two memory banks (normals and labelled anomalies), as anomalib's
memory-bank models do. Why it is here and how its settings were chosen (on a split of the
training set, not the test set): docs/results.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.config import param
from anomalia.models.common import MapModelConfig
from anomalia.models.knn.torch_model import (
    KnnScorer,
    gaussian_blur,
    gaussian_kernel,
    knn_distance,
)


@dataclass
class KnnConfig(MapModelConfig):
    """Parameters of the nearest-neighbour detector."""

    k: int = param(3, ge=1, help="neighbours averaged for each distance")
    blur_sigma: float = param(
        1.0,
        ge=0,
        help="Gaussian blur (pixels) before comparing images, 0 = raw pixels; tolerates small "
        "shifts and texture noise (+1.6 AUROC points on Fashion-MNIST, training-split sweep)",
    )
    feature_size: int = param(
        32,
        ge=1,
        help="images larger than this are average-pooled to it (bounds the banks' memory: "
        "N x C x feature_size^2 floats)",
    )
    anomaly_weight: float = param(
        0.5,
        ge=0,
        help="exponent of the distance to labelled anomalies in the score's denominator; 0 "
        "ignores them (0.5 was best of 0-1 on a split of the training set)",
    )

    def build(self, in_channels: int, image_size: int) -> KnnScorer:
        return KnnScorer(
            in_channels, image_size, self.k, self.blur_sigma, self.feature_size,
            self.anomaly_weight, self.map_sigma, self.image_score,
        )  # fmt: skip


__all__ = ["KnnConfig", "KnnScorer", "gaussian_blur", "gaussian_kernel", "knn_distance"]
