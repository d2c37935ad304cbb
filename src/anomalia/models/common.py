"""What every model shares: the scoring protocol, the config base class, error definitions and
the ABC loss."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from anomalia.config import TrainConfig, Validated, param

ErrorKind = Literal["mse", "l1"]
#: How a map-making model turns its map into the image score: ``mean`` = the mean error over
#: the image (the study's score); ``map_max`` = the largest value of the smoothed map, which a
#: small defect moves where a mean over the whole image barely changes.
ImageScore = Literal["mean", "map_max"]


class ScoringModel(nn.Module):
    """The scoring protocol: what a detector scores with, without any training-only parts.

    ``score`` is the anomaly score of new images. ``score_training`` scores the model's own
    training images for the threshold when no validation data exist; a model that memorises
    its training images (``knn``) must leave each image out there, or every one scores ~0.
    """

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score (B,) of images (B, C, H, W), higher = more anomalous."""
        raise NotImplementedError

    def score_training(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score (B,) of images the model was trained on."""
        return self.score(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions (B, C, H, W) in [0, 1], for the methods whose registry record says
        ``reconstructs``."""
        raise NotImplementedError(f"{type(self).__name__} does not reconstruct images")

    def score_and_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores (B,), anomaly maps (B, H, W) at the input's size) from one forward pass,
        for the methods whose registry record says ``has_maps``; higher = more anomalous."""
        raise NotImplementedError(f"{type(self).__name__} makes no anomaly maps")


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """1-D Gaussian of radius ceil(2 sigma), normalised to sum 1, shape (K,)."""
    radius = max(1, math.ceil(2 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    return kernel / kernel.sum()


def gaussian_blur(x: torch.Tensor, row: torch.Tensor) -> torch.Tensor:
    """Separable blur of (B, C, H, W) by ``row`` (C, 1, 1, K) then its transpose, edges
    replicated."""
    radius = row.shape[-1] // 2
    out = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, row, groups=row.shape[0])
    return F.conv2d(out, row.transpose(-1, -2), groups=row.shape[0])


class AnomalyMap(nn.Module):
    """Turns a per-pixel error (B, 1, H, W) into a smoothed anomaly map (B, H, W), and the
    map into the image score a model was asked for.

    Args:
        sigma: Gaussian smoothing in pixels (0 = none): single noisy pixels should not outweigh
            a coherent defect.
        image_score: see :data:`ImageScore`.
    """

    def __init__(self, sigma: float, image_score: str = "mean") -> None:
        super().__init__()
        self.sigma = sigma
        self.image_score = image_score
        kernel = gaussian_kernel(sigma) if sigma > 0 else torch.ones(1)
        # Not saved with the weights (it follows from sigma); a buffer so it moves with .to().
        self.register_buffer("row", kernel.view(1, 1, 1, -1), persistent=False)

    def forward(self, per_pixel: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) -> smoothed (B, H, W)."""
        smoothed = gaussian_blur(per_pixel, self.row) if self.sigma > 0 else per_pixel  # type: ignore[arg-type]
        return smoothed[:, 0]

    def score(self, mean_error: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """The image score (B,): ``mean_error`` or the maximum of ``maps``."""
        if self.image_score == "map_max":
            return maps.flatten(1).amax(dim=1)
        return mean_error


@dataclass
class ModelConfig(Validated):
    """Base of every method's parameters (a dataclass): bounds checked on creation, and
    ``build`` makes the scoring network for the data's channels and image size."""

    section: ClassVar[str] = "model"

    def build(self, in_channels: int, image_size: int) -> ScoringModel:
        raise NotImplementedError

    def check_training(self, train: TrainConfig) -> None:
        """Rules between these parameters and the training settings, checked before any data
        loads; override to add them."""


@dataclass
class MapModelConfig(ModelConfig):
    """Base of the configs of methods that make anomaly maps: how the map is smoothed and
    whether the image score is read from it."""

    map_sigma: float = param(
        2.0, ge=0, help="Gaussian smoothing of the anomaly map, in pixels (0 = none)"
    )
    image_score: ImageScore = param(
        "mean",
        help="image score: mean (the mean error over the image, the study's) or map_max (the "
        "smoothed map's maximum, which small defects move)",
    )


def reconstruction_error(x: torch.Tensor, recon: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Per-image mean reconstruction error, shape (B,). This is the anomaly score.

    Args:
        x: images (B, C, H, W).
        recon: reconstructions of the same shape.
        kind: ``"mse"`` (mean squared error) or ``"l1"`` (mean absolute error).
    """
    return pixel_error(x, recon, kind).flatten(1).mean(dim=1)


def pixel_error(x: torch.Tensor, recon: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Per-pixel reconstruction error (B, C, H, W): squared (``"mse"``) or absolute (``"l1"``)."""
    if kind == "mse":
        return (x - recon).pow(2)
    if kind == "l1":
        return (x - recon).abs()
    raise ValueError(f"reconstruction error must be 'mse' or 'l1', got {kind!r}")


def abc_loss(error: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """ABC term -log(1 - exp(-error)) for labelled anomalies, averaged over the batch.

    It falls towards 0 as the reconstruction error of an anomaly grows, so minimising it pushes
    anomalies away from good reconstructions, yet it is bounded below (unlike a negative MSE,
    which the model could drive to minus infinity by producing garbage). ``eps`` keeps the log
    finite when the error is exactly 0.
    """
    return -torch.log1p(-torch.exp(-error).clamp(max=1.0 - eps)).mean()


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad (B, C, H, W) on the bottom/right so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    pad_h, pad_w = (-h) % multiple, (-w) % multiple
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x
