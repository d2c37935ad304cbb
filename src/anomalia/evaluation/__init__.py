"""Evaluation layer: pure functions on score arrays."""

from anomalia.evaluation.metrics import (
    auprc,
    auroc,
    evaluate_scores,
    roc_points,
    threshold_metrics,
)
from anomalia.evaluation.thresholds import fit_threshold, flag

__all__ = [
    "auprc",
    "auroc",
    "evaluate_scores",
    "fit_threshold",
    "flag",
    "roc_points",
    "threshold_metrics",
]
