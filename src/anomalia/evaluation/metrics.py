"""Metrics on score arrays: pure functions, no models, no files.

AUROC and AUPRC are computed from the continuous score (thresholded predictions give a single
ROC point, not an area). Label 1 = anomaly; higher score = more anomalous.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

from anomalia.errors import DataError
from anomalia.evaluation.thresholds import flag


def _check(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape or labels.ndim != 1:
        raise DataError(
            f"labels {labels.shape} and scores {scores.shape} must be 1-d and equal in length"
        )
    if not np.isin(labels, (0, 1)).all():
        raise DataError("labels must be 0 (normal) or 1 (anomaly)")
    if not np.isfinite(scores).all():
        raise DataError(f"{int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    return labels.astype(np.int64), scores


def _check_both_classes(labels: np.ndarray, what: str) -> None:
    if labels.all() or not labels.any():
        raise DataError(f"{what} needs both normal (0) and anomalous (1) examples")


def auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve of the continuous scores."""
    labels, scores = _check(labels, scores)
    _check_both_classes(labels, "AUROC")
    return float(roc_auc_score(labels, scores))


def auprc(labels: Any, scores: Any) -> float:
    """Average precision (area under the precision-recall curve), anomalies as positives."""
    labels, scores = _check(labels, scores)
    _check_both_classes(labels, "AUPRC")
    return float(average_precision_score(labels, scores))


def roc_points(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates) of the ROC curve."""
    labels, scores = _check(labels, scores)
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr


def threshold_metrics(labels: Any, scores: Any, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 and accuracy of ``score >= threshold`` as the anomaly decision."""
    labels, scores = _check(labels, scores)
    predicted = flag(scores, threshold)
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels, predicted, average="binary", zero_division=0
    )
    return {
        "threshold": float(threshold),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "accuracy": float((predicted == labels).mean()),
    }


def evaluate_scores(
    labels: Any, scores: Any, threshold: float, classes: Any = None
) -> dict[str, Any]:
    """Every metric of a run.

    Args:
        labels: 1 = anomaly.
        scores: anomaly scores, which for reconstruction methods are the per-image test
            reconstruction errors: their mean over normals and over anomalies is the study's
            "test reconstruction loss".
        threshold: decision threshold fitted on validation data.
        classes: original class of each image; adds the mean score per class.
    """
    labels, scores = _check(labels, scores)
    out: dict[str, Any] = {
        "auroc": auroc(labels, scores),
        "auprc": auprc(labels, scores),
        "mean_score_normal": float(scores[labels == 0].mean()),
        "mean_score_anomaly": float(scores[labels == 1].mean()),
        "n_normal": int((labels == 0).sum()),
        "n_anomaly": int(labels.sum()),
        **threshold_metrics(labels, scores, threshold),
    }
    if classes is not None:
        classes = np.asarray(classes)
        out["mean_score_by_class"] = {
            int(c): float(scores[classes == c].mean()) for c in np.unique(classes)
        }
    return out
