"""Balanced batches: every batch mixes normal images and the few labelled anomalies.

This is how the study handled the imbalance: normal images are covered once per epoch, and the
labelled anomalies, far fewer, are re-sampled to fill their share of every batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.distributed as dist

from anomalia.errors import ConfigError


class BalancedBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Yields lists of dataset indices with a fixed share of normals per batch.

    With no labelled anomalies it is a plain shuffled batch sampler. Under ``torch.distributed``
    each process takes every ``world_size``-th batch, so no extra wrapping is needed.

    Args:
        targets: 1 for a labelled anomaly, 0 otherwise, one per dataset item.
        batch_size: images per batch.
        normal_fraction: share of normals in each batch when anomalies exist, in (0, 1).
        seed: base seed; the epoch is added so every epoch differs yet can be replayed.
    """

    def __init__(
        self, targets: np.ndarray, batch_size: int, normal_fraction: float = 0.5, seed: int = 0
    ) -> None:
        targets = np.asarray(targets)
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 < normal_fraction < 1:
            raise ConfigError(f"normal_fraction must be in (0, 1), got {normal_fraction}")
        self.normal_indices = np.flatnonzero(targets == 0)
        self.anomaly_indices = np.flatnonzero(targets == 1)
        if len(self.normal_indices) == 0:
            raise ConfigError("the training set has no normal images")
        self.batch_size = batch_size
        self.normal_fraction = normal_fraction
        self.seed = seed
        self.epoch = 0
        if len(self.anomaly_indices):
            self.n_normal_per_batch = min(
                batch_size - 1, max(1, round(batch_size * normal_fraction))
            )
        else:
            self.n_normal_per_batch = batch_size

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at every epoch so shuffles differ between epochs."""
        self.epoch = epoch

    @staticmethod
    def _world() -> tuple[int, int]:
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def _n_batches_total(self) -> int:
        return -(-len(self.normal_indices) // self.n_normal_per_batch)

    def __len__(self) -> int:
        _, world = self._world()
        return self._n_batches_total() // world if world > 1 else self._n_batches_total()

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        normals = rng.permutation(self.normal_indices)
        normal_batches = np.array_split(
            normals, range(self.n_normal_per_batch, len(normals), self.n_normal_per_batch)
        )
        n_anomalies = [self._n_anomalies_for(len(b)) for b in normal_batches]
        anomalies = np.empty(0, dtype=np.int64)
        if len(self.anomaly_indices):
            # Cycle through reshuffled copies so each anomaly is used about equally often.
            n_copies = -(-sum(n_anomalies) // len(self.anomaly_indices))
            anomalies = np.concatenate(
                [rng.permutation(self.anomaly_indices) for _ in range(n_copies)]
            )
        offsets = np.concatenate([[0], np.cumsum(n_anomalies)])
        rank, world = self._world()
        for b in range(rank, len(self) * world, world):
            batch_anomalies = anomalies[offsets[b] : offsets[b + 1]]
            yield np.concatenate([normal_batches[b], batch_anomalies]).tolist()

    def _n_anomalies_for(self, n_normals: int) -> int:
        if not len(self.anomaly_indices):
            return 0
        if n_normals == self.n_normal_per_batch:
            return self.batch_size - self.n_normal_per_batch
        # The last, short batch keeps the same proportion.
        return max(1, round(n_normals * (1 - self.normal_fraction) / self.normal_fraction))
