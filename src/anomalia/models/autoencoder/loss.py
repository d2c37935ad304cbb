"""Training loss of the autoencoder detector."""

from __future__ import annotations

import torch
from torch import nn

from anomalia.models.common import abc_loss, reconstruction_error


class AutoencoderLoss(nn.Module):
    """Reconstruction error on normal images plus the ABC term on labelled anomalies.

    loss = mean_normals(error) + abc_weight * mean_anomalies(-log(1 - exp(-error)))

    Args:
        error: ``"mse"`` or ``"l1"``.
        abc_weight: weight of the ABC term; 0 ignores labelled anomalies.
    """

    def __init__(self, error: str = "mse", abc_weight: float = 1.0) -> None:
        super().__init__()
        self.error = error
        self.abc_weight = abc_weight

    def forward(
        self, x: torch.Tensor, recon: torch.Tensor, targets: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Loss terms for a batch; ``targets`` is 1 for labelled anomalies, 0 otherwise.

        Returns:
            ``{"loss": total, "reconstruction": ..., "abc": ...}`` (a term absent from the batch
            is 0).
        """
        errors = reconstruction_error(x, recon, self.error)  # (B,)
        is_anomaly = targets.bool()
        zero = errors.new_zeros(())
        recon_term = errors[~is_anomaly].mean() if (~is_anomaly).any() else zero
        abc_term = abc_loss(errors[is_anomaly]) if is_anomaly.any() else zero
        return {
            "loss": recon_term + self.abc_weight * abc_term,
            "reconstruction": recon_term,
            "abc": abc_term,
        }
