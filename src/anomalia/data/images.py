"""In-memory image tensors and the torch ``Dataset`` that serves batches of them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from anomalia.errors import DataError


def to_image_tensor(images: Any, name: str = "images", as_float: bool = True) -> torch.Tensor:
    """Convert user images to a tensor (N, C, H, W): float in [0, 1], or uint8 if asked.

    Accepts NumPy arrays or tensors shaped (N, H, W), (N, C, H, W) or (N, H, W, C) with C in
    {1, 3}; uint8 is scaled by 1/255, floats must already lie in [0, 1]. With
    ``as_float=False`` uint8 input stays uint8 (a quarter of the memory; training data is
    converted batch by batch).
    """
    if isinstance(images, torch.Tensor):
        array = images.detach().cpu()
    elif isinstance(images, np.ndarray):
        array = torch.from_numpy(np.ascontiguousarray(images))
    else:
        raise DataError(
            f"{name} must be a NumPy array or a torch tensor, got {type(images).__name__}"
        )
    if array.ndim == 3:
        array = array[:, None]
    elif array.ndim == 4 and array.shape[1] not in (1, 3) and array.shape[-1] in (1, 3):
        array = array.permute(0, 3, 1, 2)
    if array.ndim != 4 or array.shape[1] not in (1, 3):
        raise DataError(
            f"{name} must be shaped (N, H, W), (N, C, H, W) or (N, H, W, C) with C = 1 or 3, "
            f"got {tuple(images.shape)}"
        )
    if len(array) == 0:
        raise DataError(f"{name} is empty")
    if array.dtype == torch.uint8:
        return array.float().div_(255.0).contiguous() if as_float else array.contiguous()
    if not array.dtype.is_floating_point:
        raise DataError(f"{name} must be uint8 (0-255) or float (0-1), got {array.dtype}")
    array = array.float()
    if not torch.isfinite(array).all():
        raise DataError(f"{name} contains NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
        raise DataError(
            f"float {name} must lie in [0, 1], found values in [{low:.3g}, {high:.3g}]; "
            "divide 8-bit images by 255"
        )
    return array.contiguous()


class TensorImageDataset(torch.utils.data.Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Images (N, C, H, W) stored as uint8 or float, with one integer target each.

    ``__getitems__`` serves a whole batch with one indexing operation, which keeps the data path
    cheap next to a small network on CPU.
    """

    def __init__(self, images: torch.Tensor, targets: torch.Tensor | np.ndarray) -> None:
        self.images = images
        self.targets = torch.as_tensor(np.asarray(targets), dtype=torch.long)
        if len(self.images) != len(self.targets):
            raise DataError(f"{len(self.images)} images but {len(self.targets)} targets")

    def __len__(self) -> int:
        return len(self.images)

    def _fetch(self, index: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[index]
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        return x, self.targets[index]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._fetch(index)

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        return self._fetch(torch.as_tensor(indices, dtype=torch.long))


def collate_batch(batch: Any) -> Any:
    """Collate function for :class:`TensorImageDataset`: batches arrive already stacked."""
    if isinstance(batch, tuple):
        return batch
    return torch.utils.data.default_collate(batch)
