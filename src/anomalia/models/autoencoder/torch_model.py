"""The study's convolutional autoencoder."""

from __future__ import annotations

import torch
from torch import nn

from anomalia.models.common import (
    AnomalyMap,
    ScoringModel,
    pad_to_multiple,
    pixel_error,
    reconstruction_error,
)


class ConvEncoder(nn.Module):
    """Two stride-2 convolutions and a linear bottleneck: (B, C, H, W) -> (B, latent_dim)."""

    def __init__(self, in_channels: int, image_size: int, latent_dim: int, base_width: int) -> None:
        super().__init__()
        self.padded_size = image_size + (-image_size) % 4
        self.feature_size = self.padded_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, base_width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(base_width, 2 * base_width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        )
        self.to_latent = nn.Linear(2 * base_width * self.feature_size**2, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(pad_to_multiple(x, 4))  # (B, 2W, S/4, S/4)
        return self.to_latent(h.flatten(1))  # (B, latent_dim)


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: (B, latent_dim) -> (B, C, H, W) in [0, 1]."""

    def __init__(
        self, out_channels: int, image_size: int, latent_dim: int, base_width: int
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.base_width = base_width
        self.feature_size = (image_size + (-image_size) % 4) // 4
        self.from_latent = nn.Sequential(
            nn.Linear(latent_dim, 2 * base_width * self.feature_size**2), nn.LeakyReLU(0.2)
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * base_width, base_width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(base_width, out_channels, 4, stride=2, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.from_latent(z).view(-1, 2 * self.base_width, self.feature_size, self.feature_size)
        out = self.upsample(h)  # (B, C, padded, padded)
        return out[..., : self.image_size, : self.image_size]


class ConvAutoencoder(ScoringModel):
    """Convolutional autoencoder whose reconstruction error is the anomaly score.

    Args:
        in_channels: image channels (from the data).
        image_size: side of the square images (from the data); any size works, sizes that are
            not multiples of 4 are padded internally and cropped back.
        latent_dim: size of the bottleneck.
        base_width: channels of the first convolution (the second has twice as many).
        error: ``"mse"`` or ``"l1"``: the per-image error used as the score.
        map_sigma: smoothing of the anomaly map (pixels).
        image_score: ``"mean"`` (the mean error) or ``"map_max"`` (the map's maximum).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        latent_dim: int = 32,
        base_width: int = 32,
        error: str = "mse",
        map_sigma: float = 2.0,
        image_score: str = "mean",
    ) -> None:
        super().__init__()
        self.error = error
        self.anomaly_map = AnomalyMap(map_sigma, image_score)
        self.encoder = ConvEncoder(in_channels, image_size, latent_dim, base_width)
        self.decoder = ConvDecoder(in_channels, image_size, latent_dim, base_width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct ``x`` (B, C, H, W) in [0, 1]."""
        return self.decoder(self.encoder(x))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions in the input's [0, 1] scale (for plots)."""
        return self(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score (B,): per-image mean reconstruction error (or the map's maximum, see
        ``image_score``); higher = more anomalous."""
        if self.anomaly_map.image_score != "mean":
            return self.score_and_map(x)[0]
        return reconstruction_error(x, self(x), self.error)

    def score_and_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and maps: the map is the per-pixel error averaged over channels, smoothed."""
        per_pixel = pixel_error(x, self(x), self.error)  # (B, C, H, W)
        maps = self.anomaly_map(per_pixel.mean(dim=1, keepdim=True))
        return self.anomaly_map.score(per_pixel.flatten(1).mean(dim=1), maps), maps
