"""What every model shares: the scoring protocol, the config base class, error definitions and
the ABC loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from anomalia.config import TrainConfig, Validated

ErrorKind = Literal["mse", "l1"]


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


def reconstruction_error(x: torch.Tensor, recon: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    """Per-image mean reconstruction error, shape (B,). This is the anomaly score.

    Args:
        x: images (B, C, H, W).
        recon: reconstructions of the same shape.
        kind: ``"mse"`` (mean squared error) or ``"l1"`` (mean absolute error).
    """
    if kind == "mse":
        per_pixel = (x - recon).pow(2)
    elif kind == "l1":
        per_pixel = (x - recon).abs()
    else:
        raise ValueError(f"reconstruction error must be 'mse' or 'l1', got {kind!r}")
    return per_pixel.flatten(1).mean(dim=1)


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
