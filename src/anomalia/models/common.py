"""Pieces shared by the reconstruction-based models: error definitions and the ABC loss."""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import torch
import torch.nn.functional as F

from anomalia.errors import ConfigError

ErrorKind = Literal["mse", "l1"]


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


def check_weights(config: Any) -> None:
    """Every ``*_weight`` and ``*_width``/``*_dim`` field of a model config must make sense."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name.endswith("_weight") and value < 0:
            raise ConfigError(f"model.{f.name} must be >= 0 (0 removes the term), got {value}")
        if f.name.endswith(("_width", "_dim")) and value < 1:
            raise ConfigError(f"model.{f.name} must be at least 1, got {value}")
