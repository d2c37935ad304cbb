"""Deep SAD's networks (Ruff et al., ICLR 2020): a LeNet-type encoder without bias terms, the
decoder used for autoencoder pretraining, and the scoring model (distance to a centre c)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anomalia.models.common import ScoringModel, pad_to_multiple


def _bn2d(channels: int) -> nn.BatchNorm2d:
    # No affine parameters, as in Deep SAD: a learnable shift would let every image map onto c.
    return nn.BatchNorm2d(channels, eps=1e-4, affine=False)


class LeNetEncoder(nn.Module):
    """Two 5x5 conv + max-pool stages and two bias-free linear layers: (B, C, H, W) -> (B, D).

    Bias terms are absent everywhere (and batch norm has no affine shift) so the trivial
    solution of mapping every input to the centre c is not available (Deep SVDD, Prop. 2).
    """

    def __init__(self, in_channels: int, image_size: int, rep_dim: int = 64, width: int = 16):
        super().__init__()
        self.feature_size = (image_size + (-image_size) % 4) // 4
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 5, padding=2, bias=False), _bn2d(width),
            nn.LeakyReLU(0.01), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 5, padding=2, bias=False), _bn2d(2 * width),
            nn.LeakyReLU(0.01), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Sequential(
            nn.Linear(2 * width * self.feature_size**2, 128, bias=False),
            nn.BatchNorm1d(128, eps=1e-4, affine=False),
            nn.LeakyReLU(0.01),
            nn.Linear(128, rep_dim, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(pad_to_multiple(x, 4))  # (B, 2w, S/4, S/4)
        return self.head(h.flatten(1))  # (B, rep_dim)


class LeNetDecoder(nn.Module):
    """Mirror of :class:`LeNetEncoder` for pretraining: (B, D) -> (B, C, H, W) in [0, 1]."""

    def __init__(self, out_channels: int, image_size: int, rep_dim: int = 64, width: int = 16):
        super().__init__()
        self.image_size = image_size
        self.width = width
        self.feature_size = (image_size + (-image_size) % 4) // 4
        self.fc = nn.Linear(rep_dim, 2 * width * self.feature_size**2, bias=False)
        self.up = nn.Sequential(
            nn.LeakyReLU(0.01), nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * width, width, 5, padding=2, bias=False), _bn2d(width),
            nn.LeakyReLU(0.01), nn.Upsample(scale_factor=2),
            nn.Conv2d(width, out_channels, 5, padding=2, bias=False), nn.Sigmoid(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.feature_size
        out = self.up(self.fc(z).view(-1, 2 * self.width, s, s))  # (B, C, 4s, 4s)
        return out[..., : self.image_size, : self.image_size]


class DeepSADNet(ScoringModel):
    """Scoring model: squared distance of the encoding to the centre ``c`` (a saved buffer).

    The decoder is kept for pretraining and for looking at reconstructions; it plays no part
    in the score.
    """

    def __init__(self, in_channels: int, image_size: int, rep_dim: int = 64, width: int = 16):
        super().__init__()
        self.encoder = LeNetEncoder(in_channels, image_size, rep_dim, width)
        self.decoder = LeNetDecoder(in_channels, image_size, rep_dim, width)
        self.register_buffer("c", torch.zeros(rep_dim))

    def distance(self, x: torch.Tensor) -> torch.Tensor:
        """Squared Euclidean distance of each encoding to c, shape (B,)."""
        return (self.encoder(x) - self.c).pow(2).sum(dim=1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score (B,): distance to c; higher = more anomalous."""
        return self.distance(x)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The pretraining autoencoder's output (for inspection; not the score)."""
        return self.decoder(self.encoder(x))

    def pretrain_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error of the autoencoder used for pretraining."""
        return F.mse_loss(self.reconstruct(x), x)
