"""Nearest-neighbour scoring on smoothed images: no learned weights, two memory banks."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from anomalia.models.common import AnomalyMap, ScoringModel, gaussian_blur, gaussian_kernel


def knn_search(
    queries: torch.Tensor, bank: torch.Tensor, n: int, chunk: int = 8192
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euclidean distances (B, n') and bank row indices (B, n') of each query's (B, D) ``n``
    nearest rows of ``bank`` (N, D), nearest first; n' = min(n, N). The bank is walked in
    chunks so memory stays O(B * chunk)."""
    n = min(n, len(bank))
    best = queries.new_full((len(queries), 0), math.inf)
    best_index = torch.zeros(len(queries), 0, dtype=torch.long, device=queries.device)
    for start in range(0, len(bank), chunk):
        d = torch.cdist(queries, bank[start : start + chunk])  # (B, chunk)
        index = torch.arange(start, start + d.shape[1], device=queries.device).expand_as(d)
        best, picked = torch.cat([best, d], dim=1).topk(n, dim=1, largest=False)  # (B, n)
        best_index = torch.cat([best_index, index], dim=1).gather(1, picked)
    return best, best_index


def knn_distance(
    queries: torch.Tensor, bank: torch.Tensor, k: int, skip: int = 0, chunk: int = 8192
) -> torch.Tensor:
    """Mean Euclidean distance from each query (B, D) to its ``k`` nearest rows of ``bank``
    (N, D) after leaving out the ``skip`` nearest, shape (B,)."""
    best, _ = knn_search(queries, bank, k + skip, chunk)
    return best[:, min(skip, best.shape[1] - 1) :].mean(dim=1)


class FeatureBankScorer(ScoringModel):
    """Scores an image by the distance of its features to the nearest normal training images'
    features, divided by a power of their distance to the nearest labelled anomalies':

        score = d_normal(x) / d_anomaly(x) ** anomaly_weight

    where d is the mean Euclidean distance to the k nearest bank rows. Without labelled
    anomalies (or with ``anomaly_weight`` 0) the score is d_normal. Subclasses define
    ``features``; the banks are buffers, so they travel with ``state_dict`` like weights do.

    Args:
        feature_dim: length of a feature row.
        k: neighbours averaged for each distance.
        anomaly_weight: exponent of the distance to labelled anomalies.
    """

    def __init__(self, feature_dim: int, k: int, anomaly_weight: float) -> None:
        super().__init__()
        self.k = k
        self.anomaly_weight = anomaly_weight
        self.feature_dim = feature_dim
        self.register_buffer("normal_bank", torch.zeros(0, feature_dim))
        self.register_buffer("anomaly_bank", torch.zeros(0, feature_dim))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> feature rows (B, feature_dim)."""
        raise NotImplementedError

    def set_banks(self, normal: torch.Tensor, anomaly: torch.Tensor) -> None:
        """Store feature rows (exact duplicates dropped: re-sampled anomalies repeat); the
        banks are data, not part of any gradient."""
        self.normal_bank = torch.unique(normal.detach(), dim=0)
        self.anomaly_bank = torch.unique(anomaly.detach(), dim=0)

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
        return self._neighbour_score(self.features(x), exclude_self)

    def _neighbour_score(self, f: torch.Tensor, exclude_self: bool) -> torch.Tensor:
        if not self.is_fitted:
            raise RuntimeError("the normal bank is empty; fit the detector first")
        d_normal = knn_distance(f, self.normal_bank, self.k, skip=int(exclude_self))
        return self._with_anomaly_term(f, d_normal)

    def _with_anomaly_term(self, f: torch.Tensor, d_normal: torch.Tensor) -> torch.Tensor:
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


class KnnScorer(FeatureBankScorer):
    """:class:`FeatureBankScorer` in a blurred, size-capped pixel space."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        k: int = 3,
        blur_sigma: float = 1.0,
        feature_size: int = 32,
        anomaly_weight: float = 0.5,
        map_sigma: float = 2.0,
        image_score: str = "mean",
    ) -> None:
        feature_size = min(image_size, feature_size)
        super().__init__(in_channels * feature_size**2, k, anomaly_weight)
        self.in_channels = in_channels
        self.image_size = image_size
        self.anomaly_map = AnomalyMap(map_sigma, image_score)
        self.blur_sigma = blur_sigma
        self.feature_size = feature_size
        # A buffer, not built in forward: ONNX export needs the kernel's shape up front.
        kernel = gaussian_kernel(blur_sigma) if blur_sigma > 0 else torch.ones(1)
        row = kernel.view(1, 1, 1, -1).repeat(in_channels, 1, 1, 1)  # (C, 1, 1, K)
        self.register_buffer("blur_row", row, persistent=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C * s * s) with s = min(H, feature_size)."""
        h = x.float()
        if self.blur_sigma > 0:
            h = gaussian_blur(h, self.blur_row)  # type: ignore[arg-type]
        if h.shape[-1] != self.feature_size:
            h = F.adaptive_avg_pool2d(h, self.feature_size)
        return h.flatten(1)

    def score(self, x: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
        """Anomaly score (B,), higher = more anomalous (see :meth:`FeatureBankScorer.score`);
        with ``image_score`` ``map_max``, the maximum of the anomaly map."""
        if self.anomaly_map.image_score != "mean":
            return self._score_and_map(x, exclude_self)[0]
        return self._neighbour_score(self.features(x), exclude_self)

    def score_and_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and maps: the map is the squared difference, per pixel of the blurred and
        size-capped image, to its k nearest normal training images (the same neighbours that
        give the score), averaged over them and the channels, resized to the input and
        smoothed. The labelled-anomaly term scales the image score only."""
        return self._score_and_map(x, exclude_self=False)

    def _score_and_map(
        self, x: torch.Tensor, exclude_self: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_fitted:
            raise RuntimeError("the normal bank is empty; fit the detector first")
        f = self.features(x)  # (B, D)
        skip = int(exclude_self)
        best, index = knn_search(f, self.normal_bank, self.k + skip)
        best, index = best[:, min(skip, best.shape[1] - 1) :], index[:, skip:]
        neighbours = self.normal_bank[index]  # (B, k, D)
        s = self.feature_size
        per_pixel = (neighbours - f[:, None]).pow(2).mean(dim=1)  # (B, D)
        per_pixel = per_pixel.view(-1, self.in_channels, s, s).mean(dim=1, keepdim=True)
        if s != x.shape[-1]:
            per_pixel = F.interpolate(per_pixel, size=x.shape[-2:], mode="bilinear")
        maps = self.anomaly_map(per_pixel)
        score = self._with_anomaly_term(f, best.mean(dim=1))
        return self.anomaly_map.score(score, maps), maps
