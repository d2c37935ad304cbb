"""The study's convolutional autoencoder detector."""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.models.autoencoder.loss import AutoencoderLoss
from anomalia.models.autoencoder.torch_model import ConvAutoencoder
from anomalia.models.common import ErrorKind, check_weights


@dataclass
class AutoencoderConfig:
    """Parameters of the autoencoder detector.

    Attributes:
        latent_dim: bottleneck size.
        base_width: channels of the first convolution.
        error: ``mse`` (the study's) or ``l1``; used for the loss and the score.
        abc_weight: weight of the ABC term on labelled anomalies (0 = one-class training).
            With the per-image *mean* error, a model that cannot yet tell anomalies from normals
            settles where both errors equal log(1 + abc_weight); at 1.0 that is a collapse to
            garbage reconstructions (AUROC 0.64 on Fashion-MNIST class 0), at 0.1 training
            escapes it (0.96). See docs/results.md.
    """

    latent_dim: int = 32
    base_width: int = 32
    error: ErrorKind = "mse"
    abc_weight: float = 0.1

    score_name = "reconstruction loss"  # class attribute: what the score is, for tables

    def __post_init__(self) -> None:
        check_weights(self)

    def build(self, in_channels: int, image_size: int) -> ConvAutoencoder:
        return ConvAutoencoder(
            in_channels, image_size, self.latent_dim, self.base_width, self.error
        )


__all__ = ["AutoencoderConfig", "AutoencoderLoss", "ConvAutoencoder"]
