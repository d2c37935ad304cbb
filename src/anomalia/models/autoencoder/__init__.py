"""The study's convolutional autoencoder detector."""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.config import param
from anomalia.models.autoencoder.loss import AutoencoderLoss
from anomalia.models.autoencoder.torch_model import ConvAutoencoder
from anomalia.models.common import ErrorKind, MapModelConfig


@dataclass
class AutoencoderConfig(MapModelConfig):
    """Parameters of the autoencoder detector.

    With the per-image *mean* error, a model that cannot yet tell anomalies from normals settles
    where both errors equal log(1 + abc_weight); at 1.0 that is a collapse to garbage
    reconstructions, at 0.1 training escapes it. See docs/results.md.
    """

    latent_dim: int = param(32, ge=1, help="bottleneck size")
    base_width: int = param(32, ge=1, help="channels of the first convolution")
    error: ErrorKind = param(
        "mse", help="reconstruction error for loss and score: mse (the study's) or l1"
    )
    abc_weight: float = param(
        0.1, ge=0, help="weight of the ABC term on labelled anomalies (0 = one-class training)"
    )

    def build(self, in_channels: int, image_size: int) -> ConvAutoencoder:
        return ConvAutoencoder(
            in_channels, image_size, self.latent_dim, self.base_width, self.error,
            self.map_sigma, self.image_score,
        )  # fmt: skip


__all__ = ["AutoencoderConfig", "AutoencoderLoss", "ConvAutoencoder"]
