"""Figures of a run. Each function returns a matplotlib ``Figure``, never shown.

Figures are built with ``matplotlib.figure.Figure`` directly, not through ``pyplot``: nothing
here selects a backend or registers a window, so importing anomalia leaves the user's
matplotlib set-up as it was, and ``savefig`` renders PNGs with Agg on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from anomalia.evaluation import auroc, roc_points


def roc_figure(labels: Any, scores: Any, title: str = "ROC curve") -> Figure:
    """ROC curve of continuous scores with its area in the legend."""
    fpr, tpr = roc_points(labels, scores)
    fig = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(fpr, tpr, lw=2, label=f"AUROC = {auroc(labels, scores):.4f}")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="chance")
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title=title,
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    ax.legend(loc="lower right")
    return fig


def score_histogram_figure(
    labels: Any, scores: Any, threshold: float | None = None, title: str = "Anomaly scores"
) -> Figure:
    """Overlaid histograms of normal and anomalous scores, with the decision threshold."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    bins = np.histogram_bin_edges(scores, bins=60).tolist()
    fig = Figure(figsize=(6, 3.8), layout="constrained")
    ax = fig.subplots()
    ax.hist(
        scores[labels == 0],
        bins=bins,
        alpha=0.6,
        density=True,
        label=f"normal (n={int((labels == 0).sum())})",
    )
    ax.hist(
        scores[labels == 1],
        bins=bins,
        alpha=0.6,
        density=True,
        label=f"anomaly (n={int(labels.sum())})",
    )
    if threshold is not None:
        ax.axvline(threshold, color="black", ls="--", lw=1, label="threshold")
    ax.set(xlabel="anomaly score (higher = more anomalous)", ylabel="density", title=title)
    ax.legend()
    return fig


def reconstruction_grid_figure(
    rows: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
) -> Figure:
    """Originals above their reconstructions, one block per group.

    Args:
        rows: ``(group name, originals (N, C, H, W), reconstructions, scores)`` per group.
    """
    n_cols = max(len(orig) for _, orig, _, _ in rows)
    fig = Figure(figsize=(1.1 * n_cols, 2.3 * len(rows)), layout="constrained")
    axes = fig.subplots(2 * len(rows), n_cols, squeeze=False)
    for r, (name, originals, recons, scores) in enumerate(rows):
        for c in range(n_cols):
            for k, images in enumerate((originals, recons)):
                ax = axes[2 * r + k, c]
                ax.set_xticks([])
                ax.set_yticks([])
                if c >= len(images):
                    ax.axis("off")
                    continue
                img = np.clip(np.moveaxis(images[c], 0, -1), 0, 1)
                ax.imshow(
                    img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1
                )
                if k == 0:
                    ax.set_title(f"{scores[c]:.3g}", fontsize=7)
            axes[2 * r, 0].set_ylabel(f"{name}\noriginal", fontsize=8)
            axes[2 * r + 1, 0].set_ylabel("reconstruction", fontsize=8)
    fig.suptitle("Test images (score above) and reconstructions")
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG (rendered by Agg whatever the current backend) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    return path
