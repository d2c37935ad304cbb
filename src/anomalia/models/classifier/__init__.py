"""The supervised baseline: a small CNN trained on normal vs labelled anomalies."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from anomalia.config import param
from anomalia.models.autoencoder.torch_model import ConvEncoder
from anomalia.models.common import ModelConfig, ScoringModel


class CNNClassifier(ScoringModel):
    """The autoencoder's encoder with a linear head; the anomaly score is the logit.

    It learns only the anomaly classes it was shown, which is why published tables find it
    weak on unseen anomaly classes (the k_l = 1 protocol).
    """

    def __init__(
        self, in_channels: int, image_size: int, latent_dim: int = 32, base_width: int = 32
    ) -> None:
        super().__init__()
        self.encoder = ConvEncoder(in_channels, image_size, latent_dim, base_width)
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(latent_dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly logits (B,)."""
        return self.head(self.encoder(x)).squeeze(1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score (B,): the logit; higher = more anomalous."""
        return self(x)


@dataclass
class ClassifierConfig(ModelConfig):
    """Parameters of the supervised classifier baseline (needs labelled anomalies)."""

    latent_dim: int = param(32, ge=1, help="size of the encoding the linear head reads")
    base_width: int = param(32, ge=1, help="channels of the first convolution")

    def build(self, in_channels: int, image_size: int) -> CNNClassifier:
        return CNNClassifier(in_channels, image_size, self.latent_dim, self.base_width)


__all__ = ["CNNClassifier", "ClassifierConfig"]
