"""Plain-text and Markdown tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; floats are printed with 4 decimals."""

    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def score_name(method: str | None) -> str:
    """What ``method``'s score measures ("reconstruction loss", "distance to c", ...)."""
    from anomalia.models import MODEL_CONFIGS

    return str(getattr(MODEL_CONFIGS.get(method or ""), "score_name", "score"))


def metrics_table(metrics: dict[str, Any]) -> str:
    """The headline metrics of one run as a two-column Markdown table."""
    score = score_name(metrics.get("method"))
    keys = [
        ("auroc", "AUROC"),
        ("auprc", "AUPRC"),
        ("mean_score_normal", f"mean test {score}, normals"),
        ("mean_score_anomaly", f"mean test {score}, anomalies"),
        ("threshold", "threshold (fitted on validation)"),
        ("precision", "precision at threshold"),
        ("recall", "recall at threshold"),
        ("f1", "F1 at threshold"),
    ]
    return markdown_table(
        ["metric", "value"], [(label, metrics[k]) for k, label in keys if k in metrics]
    )
