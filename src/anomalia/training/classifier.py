"""Training of the supervised classifier baseline: BCE on normal (0) vs labelled anomaly (1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from anomalia.models.classifier import ClassifierConfig
from anomalia.training.base import AnomalyModule


class ClassifierModule(AnomalyModule):
    """Binary cross-entropy on balanced batches (half normals, half re-sampled anomalies)."""

    config_class = ClassifierConfig

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, targets = batch
        terms = {"bce": F.binary_cross_entropy_with_logits(self.model(x), targets.float())}
        self.check_finite(terms)
        self.log_terms(terms, batch_size=len(x))
        return terms["bce"]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.make_adam(self.model.parameters())
