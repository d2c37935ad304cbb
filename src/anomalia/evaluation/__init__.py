"""Evaluation layer: pure functions on score arrays."""

from anomalia.evaluation.metrics import (
    auprc,
    auroc,
    evaluate_scores,
    roc_points,
    threshold_metrics,
)

__all__ = ["auprc", "auroc", "evaluate_scores", "roc_points", "threshold_metrics"]
