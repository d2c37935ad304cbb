"""The study's GAN baseline: the autoencoder as generator, one discriminator on normal images."""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.config import param
from anomalia.models.autoencoder import ConvAutoencoder
from anomalia.models.common import ErrorKind, MapModelConfig
from anomalia.models.discriminator import PatchDiscriminator
from anomalia.models.gan.loss import GanGeneratorLoss


@dataclass
class GanConfig(MapModelConfig):
    """Parameters of the one-discriminator GAN detector (the generator's are the autoencoder's)."""

    latent_dim: int = param(32, ge=1, help="bottleneck size")
    base_width: int = param(32, ge=1, help="channels of the first convolution")
    error: ErrorKind = param(
        "mse", help="reconstruction error for loss and score: mse (the study's) or l1"
    )
    abc_weight: float = param(
        0.1, ge=0, help="weight of the ABC term on labelled anomalies (0 = one-class training)"
    )
    adversarial_weight: float = param(
        0.01,
        ge=0,
        help="weight of BCE(D(reconstruction of a normal), 1) in the generator loss; 0 reduces "
        "the method to the autoencoder",
    )
    discriminator_width: int = param(
        32, ge=1, help="channels of the discriminator's first convolution"
    )

    def build(self, in_channels: int, image_size: int) -> ConvAutoencoder:
        """The generator: the only part used for scoring."""
        return ConvAutoencoder(
            in_channels, image_size, self.latent_dim, self.base_width, self.error,
            self.map_sigma, self.image_score,
        )  # fmt: skip

    def build_discriminator(self, in_channels: int) -> PatchDiscriminator:
        return PatchDiscriminator(in_channels, self.discriminator_width)


__all__ = ["GanConfig", "GanGeneratorLoss"]
