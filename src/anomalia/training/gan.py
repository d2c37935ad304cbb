"""Training step of the study's one-discriminator GAN (manual optimization)."""

from __future__ import annotations

from typing import Any

import torch

from anomalia.config import from_dict
from anomalia.models.common import abc_loss, reconstruction_error
from anomalia.models.discriminator import adversarial_loss, discriminator_loss
from anomalia.models.gan import GanConfig
from anomalia.training.base import AnomalyModule


class GanModule(AnomalyModule):
    """Generator = the autoencoder; one discriminator judges normals against their reconstructions.

    Each step: (1) discriminator on real normals vs detached reconstructions; (2) generator on
    reconstruction + adversarial loss (normals) and ABC (labelled anomalies).
    """

    def __init__(
        self, in_channels: int, image_size: int, model: dict[str, Any], optim: dict[str, Any]
    ) -> None:
        super().__init__(in_channels, image_size, model, optim)
        self.automatic_optimization = False
        self.config = from_dict(GanConfig, model, prefix="model.")
        self.model = self.config.build(in_channels, image_size)
        self.discriminator = self.config.build_discriminator(in_channels)

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
            terms["reconstruction"] = reconstruction_error(normals, recon, cfg.error).mean()
            g_loss = terms["reconstruction"]
            if cfg.adversarial_weight > 0:
                terms["adversarial"] = adversarial_loss(self.discriminator.logits(recon), True)
                g_loss = g_loss + cfg.adversarial_weight * terms["adversarial"]
            if len(anomalies) and cfg.abc_weight > 0:
                errors = reconstruction_error(anomalies, self.model(anomalies), cfg.error)
                terms["abc"] = abc_loss(errors)
                g_loss = g_loss + cfg.abc_weight * terms["abc"]
            terms["generator"] = g_loss
            self.check_finite(terms)
            self.gradient_step(opt_g, g_loss)
        self.log_terms(terms, batch_size=len(x))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.make_adam(self.model.parameters()),
            self.make_adam(self.discriminator.parameters()),
        ]
