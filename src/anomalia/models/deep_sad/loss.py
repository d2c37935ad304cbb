"""The Deep SAD objective."""

from __future__ import annotations

import torch


def deep_sad_loss(
    distance: torch.Tensor, targets: torch.Tensor, eta: float = 1.0, eps: float = 1e-6
) -> torch.Tensor:
    """Mean over the batch of d for normal/unlabelled images and eta / (d + eps) for labelled
    anomalies, where d is the squared distance to the centre (Ruff et al. 2020, eq. 5).

    Pulling normals in and pushing labelled anomalies out; the inverse keeps the anomaly term
    bounded below by 0, unlike a negative distance.
    """
    anomaly = targets.bool()
    per_image = torch.where(anomaly, eta / (distance + eps), distance)
    return per_image.mean()
