"""Evaluation layer: pure functions on score arrays and, pixel by pixel, on anomaly maps."""

from anomalia.evaluation.metrics import (
    auprc,
    auroc,
    evaluate_scores,
    roc_points,
    threshold_metrics,
)
from anomalia.evaluation.pixel import aupro, pixel_auroc, pro_curve
from anomalia.evaluation.thresholds import fit_threshold, flag

__all__ = [
    "auprc",
    "aupro",
    "auroc",
    "evaluate_scores",
    "fit_threshold",
    "flag",
    "pixel_auroc",
    "pro_curve",
    "roc_points",
    "threshold_metrics",
]
