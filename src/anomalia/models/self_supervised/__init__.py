"""A self-supervised detector trained from scratch on the user's own images.

An encoder learns, from augmented views of the normal images turned by random multiples of 90
degrees, to name the turn (RotNet, GEOM): to do that it must learn what the normal shape looks
like, while the augmentation (shifts, turns up to 30 degrees, scale, colour, blur, noise)
teaches it that pose and colour do not matter. With ``exposure_weight`` > 0, labelled anomalies
are shown turned too, and the head is trained to be unsure of them (outlier exposure; off by
default: it did not raise validation AUROC). An image is scored by how unsure the head is of
its turns (GEOM's score), or by its nearest normal neighbours in the learned feature space. No
pretrained weights are needed (none can be downloaded here).

How the settings were chosen (on validation data of photo-like Fashion-MNIST, against a
SimCLR-style contrastive objective, outlier exposure and the neighbour score): docs/results.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from anomalia.config import param
from anomalia.models.common import ModelConfig
from anomalia.models.knn import KnnConfig
from anomalia.models.self_supervised.loss import exposure_loss, rotation_loss
from anomalia.models.self_supervised.torch_model import (
    ConvEncoder,
    SelfSupervisedScore,
    SelfSupervisedScorer,
    rotate_quarters,
)


@dataclass
class SelfSupervisedConfig(ModelConfig):
    """Parameters of the self-supervised detector."""

    width: int = param(32, ge=1, help="channels of the encoder's first block (features: 4x)")
    views: Literal["none", "light", "strong"] = param(
        "strong",
        help="augmentation preset that makes the training views of each image (none: the "
        "images only turned)",
    )
    exposure_weight: float = param(
        0.0,
        ge=0,
        help="weight of outlier exposure: turned labelled anomalies must leave the rotation "
        "head unsure (its prediction pushed towards uniform); 0 = off, the default: 0.5 did "
        "not raise validation AUROC on photo-like Fashion-MNIST (docs/results.md)",
    )
    score: SelfSupervisedScore = param(
        "rotation",
        help="rotation: how unsure the head is of the image's quarter turns (GEOM); neighbours: "
        "distance to the nearest normal training images in feature space, as knn's; fused: "
        "rotation plus knn's blurred-pixel score, each divided by its spread over the normal "
        "training images (for centred images such as Fashion-MNIST; docs/results.md)",
    )
    members: int = param(
        1,
        ge=1,
        help="networks trained side by side, each from its own initial weights, their scores "
        "averaged (training and scoring cost about this many times one network); default 1: 3 "
        "gained only 0.27 AUROC over its average member on photo-like design data "
        "(docs/results.md)",
    )
    k: int = param(3, ge=1, help="neighbours averaged for each distance (score: neighbours)")
    anomaly_weight: float = param(
        0.5,
        ge=0,
        help="exponent of the distance to labelled anomalies (score: neighbours, as knn's)",
    )

    def build(self, in_channels: int, image_size: int) -> SelfSupervisedScorer:
        pixels = KnnConfig().build(in_channels, image_size) if self.score == "fused" else None
        return SelfSupervisedScorer(
            in_channels, image_size, self.width, self.k, self.anomaly_weight, self.score, pixels,
            self.members,
        )  # fmt: skip


__all__ = [
    "ConvEncoder",
    "SelfSupervisedConfig",
    "SelfSupervisedScorer",
    "exposure_loss",
    "rotate_quarters",
    "rotation_loss",
]
