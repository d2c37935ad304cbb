"""Generator objective of the one-discriminator GAN."""

from __future__ import annotations

import torch
from torch import nn

from anomalia.models.common import abc_loss, reconstruction_error
from anomalia.models.discriminator import adversarial_loss


class GanGeneratorLoss(nn.Module):
    """Reconstruction of normals + adversarial term + ABC on labelled anomalies.

    loss = error(normals) + adversarial_weight * BCE(D(recon of normals), 1)
           + abc_weight * mean_anomalies(-log(1 - exp(-error)))

    Args:
        error: ``"mse"`` or ``"l1"``.
        abc_weight: weight of the ABC term; 0 ignores labelled anomalies.
        adversarial_weight: weight of the adversarial term; 0 leaves it out.
    """

    def __init__(self, error: str, abc_weight: float, adversarial_weight: float) -> None:
        super().__init__()
        self.error = error
        self.abc_weight = abc_weight
        self.adversarial_weight = adversarial_weight

    def forward(
        self,
        normals: torch.Tensor,
        recon: torch.Tensor,
        fake_logits: torch.Tensor | None,
        anomalies: torch.Tensor,
        anomaly_recon: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """Loss terms; ``"generator"`` is the total to minimise.

        Args:
            normals: normal images (N, C, H, W) and ``recon`` their reconstructions.
            fake_logits: the discriminator's logits for ``recon`` (None: no adversarial term).
            anomalies: labelled anomalies (A, C, H, W), ``anomaly_recon`` their reconstructions
                (None: no ABC term).
        """
        terms = {"reconstruction": reconstruction_error(normals, recon, self.error).mean()}
        total = terms["reconstruction"]
        if fake_logits is not None:
            terms["adversarial"] = adversarial_loss(fake_logits, True)
            total = total + self.adversarial_weight * terms["adversarial"]
        if anomaly_recon is not None:
            terms["abc"] = abc_loss(reconstruction_error(anomalies, anomaly_recon, self.error))
            total = total + self.abc_weight * terms["abc"]
        terms["generator"] = total
        return terms
