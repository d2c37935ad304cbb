"""Training step of the study's one-discriminator GAN (manual optimization)."""

from __future__ import annotations

from typing import Any

import torch

from anomalia.models.discriminator import discriminator_loss
from anomalia.models.gan import GanConfig, GanGeneratorLoss
from anomalia.training.base import AnomalyModule


class GanModule(AnomalyModule):
    """Generator = the autoencoder; one discriminator judges normals against their reconstructions.

    Each step: (1) discriminator on real normals vs detached reconstructions; (2) generator on
    reconstruction + adversarial loss (normals) and ABC (labelled anomalies).
    """

    config_class = GanConfig
    config: GanConfig

    def __init__(
        self, in_channels: int, image_size: int, model: dict[str, Any], optim: dict[str, Any]
    ) -> None:
        super().__init__(in_channels, image_size, model, optim)
        self.automatic_optimization = False
        self.discriminator = self.config.build_discriminator(in_channels)
        cfg = self.config
        self.generator_loss = GanGeneratorLoss(cfg.error, cfg.abc_weight, cfg.adversarial_weight)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, targets = batch
        opt_g, opt_d = self.optimizers()  # type: ignore[attr-defined]
        normals, anomalies = x[targets == 0], x[targets == 1]
        cfg = self.config
        terms: dict[str, torch.Tensor] = {}

        if cfg.adversarial_weight > 0:
            with self.toggled_optimizer(opt_d):
                with torch.no_grad():
                    fake = self.model(normals)
                terms["discriminator"] = discriminator_loss(self.discriminator, normals, fake)
                self.gradient_step(opt_d, terms["discriminator"])

        with self.toggled_optimizer(opt_g):
            recon = self.model(normals)
            logits = self.discriminator.logits(recon) if cfg.adversarial_weight > 0 else None
            use_abc = len(anomalies) > 0 and cfg.abc_weight > 0
            anomaly_recon = self.model(anomalies) if use_abc else None
            g_terms = self.generator_loss(normals, recon, logits, anomalies, anomaly_recon)
            terms.update(g_terms)
            self.check_finite(terms)
            self.gradient_step(opt_g, g_terms["generator"])
        self.log_terms(terms, batch_size=len(x))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.make_adam(self.model.parameters()),
            self.make_adam(self.discriminator.parameters()),
        ]
