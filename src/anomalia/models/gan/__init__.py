"""The study's GAN baseline: the autoencoder as generator, one discriminator on normal images."""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.config import param
from anomalia.models.autoencoder import AutoencoderConfig
from anomalia.models.discriminator import PatchDiscriminator
from anomalia.models.gan.loss import GanGeneratorLoss


@dataclass
class GanConfig(AutoencoderConfig):
    """Parameters of the one-discriminator GAN detector: the generator is the autoencoder
    (its parameters, and ``build`` makes it: the only part used for scoring), plus the
    adversarial term and the discriminator."""

    adversarial_weight: float = param(
        0.01,
        ge=0,
        help="weight of BCE(D(reconstruction of a normal), 1) in the generator loss; 0 reduces "
        "the method to the autoencoder",
    )
    discriminator_width: int = param(
        32, ge=1, help="channels of the discriminator's first convolution"
    )

    def build_discriminator(self, in_channels: int) -> PatchDiscriminator:
        return PatchDiscriminator(in_channels, self.discriminator_width)


__all__ = ["GanConfig", "GanGeneratorLoss"]
