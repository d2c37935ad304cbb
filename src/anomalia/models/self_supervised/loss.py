"""The self-supervised detector's training losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rotation_loss(logits: torch.Tensor, quarters: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the rotation heads' logits (B, members, 4) against the quarter turns
    (B,) that were applied, averaged over images and members: a net that can tell which way
    up a normal image is has learnt its shape."""
    members = logits.shape[1]
    return F.cross_entropy(logits.flatten(0, 1), quarters.repeat_interleave(members))


def exposure_loss(logits: torch.Tensor) -> torch.Tensor:
    """Outlier exposure (Hendrycks et al., NeurIPS 2019): the cross-entropy of the rotation
    heads' logits (B, members, 4) on turned labelled anomalies against the uniform distribution,
    least (log 4) when the heads cannot tell which way up they are."""
    return -F.log_softmax(logits, dim=-1).mean()
