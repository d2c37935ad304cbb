"""The self-supervised detector's training losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rotation_loss(logits: torch.Tensor, quarters: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the rotation head's logits (B, 4) against the quarter turns (B,) that
    were applied: a net that can tell which way up a normal image is has learnt its shape."""
    return F.cross_entropy(logits, quarters)


def exposure_loss(logits: torch.Tensor) -> torch.Tensor:
    """Outlier exposure (Hendrycks et al., NeurIPS 2019): the cross-entropy of the rotation
    head's logits (B, 4) on turned labelled anomalies against the uniform distribution, least
    (log 4) when the head cannot tell which way up they are."""
    return -F.log_softmax(logits, dim=1).mean()
