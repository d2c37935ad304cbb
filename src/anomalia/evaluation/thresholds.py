"""Decision thresholds on scores. The decision everywhere is ``score >= threshold`` = anomaly,
the rule under which scikit-learn's precision-recall curve reports its thresholds."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import precision_recall_curve


def fit_threshold(
    scores: Any, labels: Any, quantile: float, source: str = "validation"
) -> tuple[float, str]:
    """The threshold, and a description of the rule that chose it.

    With both normal (0) and anomalous (1) labels: the F1-optimal threshold (the lowest score
    of the anomalies it flags, so that anomaly itself is flagged). With normals only: the
    ``quantile`` of their scores.

    Args:
        scores: anomaly scores (N,).
        labels: 1 = anomaly, 0 = normal.
        quantile: quantile of normal scores used when there are no anomalies, in (0, 1).
        source: what the scores are, for the description ("validation", "training").
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if labels.any() and not labels.all():
        precision, recall, thresholds = precision_recall_curve(labels, scores)
        f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
        return float(thresholds[int(np.argmax(f1[:-1]))]), f"max F1 on {source}"
    rule = f"{quantile:g} quantile of {source} normal scores"
    return float(np.quantile(scores[labels == 0], quantile)), rule


def flag(scores: Any, threshold: float) -> np.ndarray:
    """1 where ``score >= threshold`` (an anomaly), else 0."""
    return (np.asarray(scores) >= threshold).astype(np.int64)
