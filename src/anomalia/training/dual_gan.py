"""Training step of the two-discriminator GAN (Kim et al. 2020), with manual optimization."""

from __future__ import annotations

from typing import Any

import torch

from anomalia.models.discriminator import PatchDiscriminator, discriminator_loss
from anomalia.models.dual_gan import DualGanConfig, DualGanGenerator, DualGanGeneratorLoss
from anomalia.training.base import AnomalyModule


class DualGanModule(AnomalyModule):
    """U-Net generator, a normal discriminator and an anomaly discriminator.

    Update order every step (the batch is split by label first):
      1. normal_D: real normals -> 1, detached reconstructions of normals -> 0;
      2. generator on normals: L1 + latent + worst-patch + adversarial(normal_D -> 1);
      3. anomaly_D: real labelled anomalies -> 1, detached reconstructions of them -> 0;
      4. generator on anomalies: ABC + anomaly-adversarial(anomaly_D -> 0).
    Each has its own Adam optimizer; the discriminators are never used for scoring.
    """

    config_class = DualGanConfig
    config: DualGanConfig
    model: DualGanGenerator

    def __init__(
        self, in_channels: int, image_size: int, model: dict[str, Any], optim: dict[str, Any]
    ) -> None:
        super().__init__(in_channels, image_size, model, optim)
        self.automatic_optimization = False
        self.normal_discriminator = self.config.build_discriminator(in_channels)
        self.anomaly_discriminator = self.config.build_discriminator(in_channels)
        self.generator_loss = DualGanGeneratorLoss(
            self.config, self.config.patch_geometry(image_size)
        )

    # Every generator pass below runs on the *whole* batch and keeps only the part it needs.
    # With batch norm, passes over normal-only and anomaly-only batches would normalise with
    # different statistics than scoring does; the anomaly losses then learn to wreck whatever
    # the running statistics produce, which is every test image (seen here: normal test error
    # 0.98 against 0.13 in training). Whole-batch passes keep training and scoring consistent.

    def normal_generator_loss(
        self, x: torch.Tensor, is_anomaly: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Weighted generator terms on the normal part of prepared batch ``x``."""
        recon_all, z_all = self.model(x)
        normal = ~is_anomaly
        return self.generator_loss.normal(
            x[normal],
            recon_all[normal],
            z_all[normal],
            lambda: self.model.unet.encode(recon_all)[normal],
            self.normal_discriminator,
        )

    def anomaly_generator_loss(
        self, x: torch.Tensor, is_anomaly: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Weighted generator terms on the labelled-anomaly part of prepared batch ``x``."""
        recon = self.model(x)[0][is_anomaly]
        return self.generator_loss.anomaly(x[is_anomaly], recon, self.anomaly_discriminator)

    def _discriminator_step(
        self,
        optimizer: Any,
        discriminator: PatchDiscriminator,
        x: torch.Tensor,
        part: torch.Tensor,
        weight: float,
    ) -> torch.Tensor:
        """Train ``discriminator``: the ``part`` of ``x`` is real, its reconstruction fake."""
        with self.toggled_optimizer(optimizer):
            with torch.no_grad():  # the generator is not updated here: fakes are detached
                fake = self.model(x)[0][part]
            loss = weight * discriminator_loss(discriminator, x[part], fake)
            self.gradient_step(optimizer, loss)
        return loss.detach()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, targets = batch
        x = self.model.prepare(x)  # [-1, 1] at the working size
        is_anomaly = targets == 1
        opt_g, opt_dn, opt_da = self.optimizers()  # type: ignore[attr-defined]
        cfg = self.config
        terms: dict[str, torch.Tensor] = {}

        if not is_anomaly.all():
            if cfg.normal_discriminator_weight > 0 and cfg.adversarial_weight > 0:
                terms["normal_discriminator"] = self._discriminator_step(
                    opt_dn,
                    self.normal_discriminator,
                    x,
                    ~is_anomaly,
                    cfg.normal_discriminator_weight,
                )
            with self.toggled_optimizer(opt_g):
                g_terms = self.normal_generator_loss(x, is_anomaly)
                self.check_finite(g_terms)
                self.gradient_step(opt_g, g_terms["generator_normal"])
            terms.update(g_terms)

        has_anomaly_terms = cfg.abc_weight > 0 or cfg.anomaly_adversarial_weight > 0
        if is_anomaly.any() and has_anomaly_terms:
            if cfg.anomaly_discriminator_weight > 0 and cfg.anomaly_adversarial_weight > 0:
                terms["anomaly_discriminator"] = self._discriminator_step(
                    opt_da,
                    self.anomaly_discriminator,
                    x,
                    is_anomaly,
                    cfg.anomaly_discriminator_weight,
                )
            with self.toggled_optimizer(opt_g):
                a_terms = self.anomaly_generator_loss(x, is_anomaly)
                self.check_finite(a_terms)
                self.gradient_step(opt_g, a_terms["generator_anomaly"])
            terms.update(a_terms)
        self.log_terms(terms, batch_size=len(x))

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        return [
            self.make_adam(self.model.parameters()),
            self.make_adam(self.normal_discriminator.parameters()),
            self.make_adam(self.anomaly_discriminator.parameters()),
        ]
