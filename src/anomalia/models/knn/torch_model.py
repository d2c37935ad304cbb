"""Nearest-neighbour scoring on smoothed images: no learned weights, two memory banks."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from anomalia.models.common import ScoringModel


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


def knn_distance(
    queries: torch.Tensor, bank: torch.Tensor, k: int, skip: int = 0, chunk: int = 8192
) -> torch.Tensor:
    """Mean Euclidean distance from each query (B, D) to its ``k`` nearest rows of ``bank``
    (N, D) after leaving out the ``skip`` nearest, shape (B,). The bank is walked in chunks so
    memory stays O(B * chunk)."""
    n = min(k + skip, len(bank))
    best = queries.new_full((len(queries), 0), math.inf)
    for start in range(0, len(bank), chunk):
        d = torch.cdist(queries, bank[start : start + chunk])  # (B, chunk)
        best = torch.cat([best, d], dim=1).topk(n, dim=1, largest=False).values  # (B, n)
    return best[:, min(skip, n - 1) :].mean(dim=1)


class KnnScorer(ScoringModel):
    """Scores an image by its distance to the nearest normal training images, divided by a
    power of its distance to the nearest labelled anomalies:

        score = d_normal(x) / d_anomaly(x) ** anomaly_weight

    where d is the mean distance to the k nearest bank entries in a blurred, size-capped pixel
    space. Without labelled anomalies (or with ``anomaly_weight`` 0) the score is d_normal.
    The banks are buffers, so they travel with ``state_dict`` like weights do.
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        k: int = 3,
        blur_sigma: float = 1.0,
        feature_size: int = 32,
        anomaly_weight: float = 0.5,
    ) -> None:
        super().__init__()
        self.k = k
        self.blur_sigma = blur_sigma
        self.feature_size = min(image_size, feature_size)
        self.anomaly_weight = anomaly_weight
        self.feature_dim = in_channels * self.feature_size**2
        # A buffer, not built in forward: ONNX export needs the kernel's shape up front.
        kernel = gaussian_kernel(blur_sigma) if blur_sigma > 0 else torch.ones(1)
        row = kernel.view(1, 1, 1, -1).repeat(in_channels, 1, 1, 1)  # (C, 1, 1, K)
        self.register_buffer("blur_row", row, persistent=False)
        self.register_buffer("normal_bank", torch.zeros(0, self.feature_dim))
        self.register_buffer("anomaly_bank", torch.zeros(0, self.feature_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C * s * s) with s = min(H, feature_size)."""
        h = x.float()
        if self.blur_sigma > 0:
            h = gaussian_blur(h, self.blur_row)  # type: ignore[arg-type]
        if h.shape[-1] != self.feature_size:
            h = F.adaptive_avg_pool2d(h, self.feature_size)
        return h.flatten(1)

    def set_banks(self, normal: torch.Tensor, anomaly: torch.Tensor) -> None:
        """Store feature rows (exact duplicates dropped: re-sampled anomalies repeat)."""
        self.normal_bank = torch.unique(normal, dim=0)
        self.anomaly_bank = torch.unique(anomaly, dim=0)

    @property
    def is_fitted(self) -> bool:
        return len(self.normal_bank) > 0

    def score(self, x: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
        """Anomaly score (B,), higher = more anomalous.

        Args:
            x: images (B, C, H, W).
            exclude_self: skip each query's single nearest normal (for scoring the bank's own
                images, whose nearest neighbour is themselves at distance 0).
        """
        if not self.is_fitted:
            raise RuntimeError("the normal bank is empty; fit the detector first")
        f = self.features(x)
        d_normal = knn_distance(f, self.normal_bank, self.k, skip=int(exclude_self))
        if len(self.anomaly_bank) == 0 or self.anomaly_weight == 0:
            return d_normal
        d_anomaly = knn_distance(f, self.anomaly_bank, self.k)
        eps = 1e-6  # an image identical to a labelled anomaly gets a large, finite score
        return d_normal / (d_anomaly + eps) ** self.anomaly_weight

    def score_training(self, x: torch.Tensor) -> torch.Tensor:
        """Scores of the bank's own images, each leaving itself out (else every one is ~0)."""
        return self.score(x, exclude_self=True)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        # The banks' sizes are known only from the saved state: resize before copying.
        for name in ("normal_bank", "anomaly_bank"):
            saved = state_dict.get(prefix + name)
            if saved is not None:
                setattr(self, name, torch.empty_like(saved))
        super()._load_from_state_dict(state_dict, prefix, *args)
