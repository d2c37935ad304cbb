"""Generator losses of the two-discriminator GAN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from anomalia.models.common import abc_loss
from anomalia.models.discriminator import PatchDiscriminator, adversarial_loss


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


class DualGanGeneratorLoss(nn.Module):
    """The generator's two objectives: one on the normal part of a batch, one on its labelled
    anomalies. A weight of 0 leaves its term out, and the forward pass only that term needs
    (the bottleneck of the reconstruction, a discriminator's logits) is then not made.

    The terms are built in a fixed order (reconstruction, latent, patch, adversarial; ABC,
    anomaly-adversarial): autograd sums the gradients reaching a tensor in the order its uses
    were created, so the order is part of what makes a seeded run repeatable.

    Args:
        config: the method's parameters (weights and patch geometry).
        patch: (patch size, stride, number of worst patches) at the working size.
    """

    def __init__(self, config: Any, patch: tuple[int, int, int]) -> None:
        super().__init__()
        self.config = config
        self.patch = patch

    def normal(
        self,
        x: torch.Tensor,
        recon: torch.Tensor,
        z: torch.Tensor,
        encode_recon: Callable[[], torch.Tensor],
        discriminator: PatchDiscriminator,
    ) -> dict[str, torch.Tensor]:
        """Terms on normals: L1 + latent + worst-patch + adversarial(normal_D -> 1).

        Args:
            x: normal images at the working size, ``recon`` their reconstructions.
            z: their bottlenecks; ``encode_recon()`` makes the bottlenecks of ``recon``.
            discriminator: the normal discriminator.
        """
        cfg = self.config
        terms = {"reconstruction": (x - recon).abs().mean()}
        total = cfg.reconstruction_weight * terms["reconstruction"]
        if cfg.latent_weight > 0:
            terms["latent"] = latent_loss(z, encode_recon())
            total = total + cfg.latent_weight * terms["latent"]
        if cfg.patch_weight > 0:
            terms["patch"] = patch_loss(x, recon, *self.patch)
            total = total + cfg.patch_weight * terms["patch"]
        if cfg.adversarial_weight > 0:
            terms["adversarial"] = adversarial_loss(discriminator.logits(recon), True)
            total = total + cfg.adversarial_weight * terms["adversarial"]
        terms["generator_normal"] = total
        return terms

    def anomaly(
        self, x: torch.Tensor, recon: torch.Tensor, discriminator: PatchDiscriminator
    ) -> dict[str, torch.Tensor]:
        """Terms on labelled anomalies: ABC + anomaly-adversarial(anomaly_D -> 0)."""
        cfg = self.config
        total = x.new_zeros(())
        terms: dict[str, torch.Tensor] = {}
        if cfg.abc_weight > 0:
            terms["abc"] = abc_loss((x - recon).abs().flatten(1).mean(dim=1))
            total = total + cfg.abc_weight * terms["abc"]
        if cfg.anomaly_adversarial_weight > 0:
            logits = discriminator.logits(recon)
            terms["anomaly_adversarial"] = adversarial_loss(logits, False)
            total = total + cfg.anomaly_adversarial_weight * terms["anomaly_adversarial"]
        terms["generator_anomaly"] = total
        return terms
