"""Generator losses of the two-discriminator GAN that are not adversarial."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def patch_loss(
    x: torch.Tensor, recon: torch.Tensor, patch_size: int, stride: int, n_worst: int
) -> torch.Tensor:
    """Mean L1 error of the ``n_worst`` worst-reconstructed patches of each image.

    The per-pixel error is averaged over channels, then over each ``patch_size`` square at
    ``stride``; the ``n_worst`` largest patch errors per image are averaged. It keeps the
    gradient (top-k selects, it does not detach), so the generator learns from its worst regions.
    """
    error = (x - recon).abs().mean(dim=1, keepdim=True)  # (B, 1, H, W)
    patches = F.avg_pool2d(error, kernel_size=patch_size, stride=stride).flatten(1)  # (B, P)
    k = min(n_worst, patches.shape[1])
    return patches.topk(k, dim=1).values.mean()


def latent_loss(z: torch.Tensor, z_recon: torch.Tensor) -> torch.Tensor:
    """L1 distance between the bottleneck of an image and of its reconstruction."""
    return (z - z_recon).abs().mean()
