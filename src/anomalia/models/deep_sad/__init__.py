"""Deep SAD (Ruff et al., "Deep Semi-Supervised Anomaly Detection", ICLR 2020)."""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.config import TrainConfig, param
from anomalia.errors import ConfigError
from anomalia.models.common import ModelConfig
from anomalia.models.deep_sad.loss import deep_sad_loss
from anomalia.models.deep_sad.torch_model import DeepSADNet, LeNetDecoder, LeNetEncoder


@dataclass
class DeepSADConfig(ModelConfig):
    """Parameters of Deep SAD. The paper trains 150 + 150 epochs at lr 1e-4 on a GPU."""

    rep_dim: int = param(64, ge=1, help="size of the representation (64 for Fashion-MNIST)")
    width: int = param(16, ge=1, help="channels of the first convolution (16 in the LeNet)")
    eta: float = param(1.0, gt=0, help="weight of labelled anomalies (eta in the paper)")
    n_pretrain_epochs: int = param(
        5,
        ge=0,
        help="autoencoder pretraining epochs, taken from the run's n_epochs; the rest train "
        "Deep SAD",
    )

    def check_training(self, train: TrainConfig) -> None:
        if train.n_epochs <= self.n_pretrain_epochs:
            raise ConfigError(
                f"train.n_epochs ({train.n_epochs}) must exceed model.n_pretrain_epochs "
                f"({self.n_pretrain_epochs}); the rest are the Deep SAD epochs"
            )

    def build(self, in_channels: int, image_size: int) -> DeepSADNet:
        return DeepSADNet(in_channels, image_size, self.rep_dim, self.width)


__all__ = ["DeepSADConfig", "DeepSADNet", "LeNetDecoder", "LeNetEncoder", "deep_sad_loss"]
