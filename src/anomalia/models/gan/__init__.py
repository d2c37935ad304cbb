"""The study's GAN baseline: the autoencoder as generator, one discriminator on normal images."""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.models.autoencoder import ConvAutoencoder
from anomalia.models.common import ErrorKind, check_weights
from anomalia.models.discriminator import PatchDiscriminator


@dataclass
class GanConfig:
    """Parameters of the one-discriminator GAN detector.

    Attributes:
        latent_dim, base_width, error: the generator (the autoencoder's parameters).
        abc_weight: weight of the ABC term on labelled anomalies (see the autoencoder).
        adversarial_weight: weight of BCE(D(reconstruction of a normal), 1) in the generator
            loss; 0 reduces the method to the autoencoder.
        discriminator_width: channels of the discriminator's first convolution.
    """

    latent_dim: int = 32
    base_width: int = 32
    error: ErrorKind = "mse"
    abc_weight: float = 0.1
    adversarial_weight: float = 0.01
    discriminator_width: int = 32

    score_name = "reconstruction loss"  # class attribute: what the score is, for tables

    def __post_init__(self) -> None:
        check_weights(self)

    def build(self, in_channels: int, image_size: int) -> ConvAutoencoder:
        """The generator: the only part used for scoring."""
        return ConvAutoencoder(
            in_channels, image_size, self.latent_dim, self.base_width, self.error
        )

    def build_discriminator(self, in_channels: int) -> PatchDiscriminator:
        return PatchDiscriminator(in_channels, self.discriminator_width)


__all__ = ["GanConfig"]
