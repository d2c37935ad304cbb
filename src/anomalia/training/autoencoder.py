"""Training step of the autoencoder detector."""

from __future__ import annotations

from typing import Any

import torch

from anomalia.config import from_dict
from anomalia.models.autoencoder import AutoencoderConfig, AutoencoderLoss
from anomalia.training.base import AnomalyModule


class AutoencoderModule(AnomalyModule):
    """Plain gradient descent on reconstruction error (normals) + ABC (labelled anomalies)."""

    def __init__(
        self, in_channels: int, image_size: int, model: dict[str, Any], optim: dict[str, Any]
    ) -> None:
        super().__init__(in_channels, image_size, model, optim)
        config = from_dict(AutoencoderConfig, model, prefix="model.")
        self.model = config.build(in_channels, image_size)
        self.loss = AutoencoderLoss(config.error, config.abc_weight)

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
