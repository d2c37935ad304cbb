"""PatchGAN-style discriminator shared by the GAN detectors (training-only: never scores)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def init_pix2pix_weights(module: nn.Module) -> None:
    """pix2pix initialisation: conv weights ~ N(0, 0.02); batch-norm scale ~ N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class PatchDiscriminator(nn.Module):
    """Maps images (B, C, H, W) to a map of per-patch "real" probabilities (B, 1, h, w).

    Two stride-2 convolutions (batch norm on the second), then two stride-1 convolutions as in
    pix2pix's PatchGAN; each output cell judges one receptive-field patch.

    Args:
        in_channels: image channels.
        base_width: channels of the first convolution.
    """

    def __init__(self, in_channels: int, base_width: int = 32) -> None:
        super().__init__()
        w = base_width
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, w, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, 1, 3, stride=1, padding=1),
        )
        init_pix2pix_weights(self)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-sigmoid patch map (B, 1, h, w); losses use it for numerical stability."""
        return self.net(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patch map of probabilities that each patch is real, (B, 1, h, w)."""
        return torch.sigmoid(self.logits(x))


def adversarial_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """BCE between a sigmoid patch map (given as logits) and all-ones (real) or all-zeros."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def discriminator_loss(
    discriminator: PatchDiscriminator, real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """Mean of BCE(D(real), 1) and BCE(D(fake), 0). ``fake`` must already be detached."""
    return 0.5 * (
        adversarial_loss(discriminator.logits(real), True)
        + adversarial_loss(discriminator.logits(fake), False)
    )
