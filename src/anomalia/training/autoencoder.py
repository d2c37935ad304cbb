"""Training step of the autoencoder detector."""

from __future__ import annotations

from typing import Any

import torch

from anomalia.models.autoencoder import AutoencoderConfig, AutoencoderLoss
from anomalia.training.base import AnomalyModule


class AutoencoderModule(AnomalyModule):
    """Plain gradient descent on reconstruction error (normals) + ABC (labelled anomalies)."""

    config_class = AutoencoderConfig
    config: AutoencoderConfig

    def __init__(
        self, in_channels: int, image_size: int, model: dict[str, Any], optim: dict[str, Any]
    ) -> None:
        super().__init__(in_channels, image_size, model, optim)
        self.loss = AutoencoderLoss(self.config.error, self.config.abc_weight)

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, targets = batch
        terms = self.loss(x, self.model(x), targets)
        self.check_finite(terms)
        self.log_terms(terms, batch_size=len(x))
        return terms["loss"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.make_adam(self.model.parameters())
