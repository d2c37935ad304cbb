"""Deep SAD (Ruff et al., "Deep Semi-Supervised Anomaly Detection", ICLR 2020)."""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.models.common import check_weights
from anomalia.models.deep_sad.loss import deep_sad_loss
from anomalia.models.deep_sad.torch_model import DeepSADNet, LeNetDecoder, LeNetEncoder


@dataclass
class DeepSADConfig:
    """Parameters of Deep SAD.

    Attributes:
        rep_dim: size of the representation (Deep SAD: 64 for Fashion-MNIST).
        width: channels of the first convolution (16 in the paper's LeNet).
        eta: weight of labelled anomalies (eta in the paper; 1.0).
        n_pretrain_epochs: autoencoder pretraining epochs, taken from the run's ``n_epochs``;
            the rest train Deep SAD. The paper uses 150 + 150 at lr 1e-4 on a GPU.
    """

    rep_dim: int = 64
    width: int = 16
    eta: float = 1.0
    n_pretrain_epochs: int = 5

    score_name = "distance to c"  # class attribute: what the score is, for tables

    def __post_init__(self) -> None:
        check_weights(self)
        if self.eta <= 0:
            from anomalia.errors import ConfigError

            raise ConfigError(f"model.eta must be positive, got {self.eta}")

    def build(self, in_channels: int, image_size: int) -> DeepSADNet:
        return DeepSADNet(in_channels, image_size, self.rep_dim, self.width)


__all__ = ["DeepSADConfig", "DeepSADNet", "LeNetDecoder", "LeNetEncoder", "deep_sad_loss"]
