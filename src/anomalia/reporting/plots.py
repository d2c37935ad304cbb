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


def overlay(image: np.ndarray, amap: np.ndarray, scale: float | None = None) -> np.ndarray:
    """An RGB uint8 (H, W, 3) picture of ``image`` (C, H, W) in [0, 1] under its anomaly map
    (H, W) in a heat colour map, more opaque where the map is higher.

    Args:
        scale: the map value shown at full heat (a run's :attr:`Detector.map_scale_`, so
            pictures of one run compare); default the map's own maximum.
    """
    from matplotlib import colormaps

    gray = np.clip(image, 0, 1).mean(axis=0) if image.shape[0] == 3 else np.clip(image[0], 0, 1)
    base = np.clip(np.moveaxis(image, 0, -1), 0, 1) if image.shape[0] == 3 else gray[..., None]
    top = float(scale if scale is not None else amap.max()) or 1.0
    heat = np.clip(amap / top, 0, 1)
    colour = colormaps["inferno"](heat)[..., :3]
    alpha = 0.15 + 0.6 * heat[..., None]
    return np.round(255 * ((1 - alpha) * base + alpha * colour)).astype(np.uint8)


def anomaly_map_figure(
    groups: Sequence[tuple[str, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]],
    scale: float | None = None,
) -> Figure:
    """Images, their anomaly-map overlays and (when known) ground-truth masks, one block of
    rows per group (e.g. the most and the least anomalous test images).

    Args:
        groups: ``(name, images (N, C, H, W) in [0, 1], maps (N, H, W), masks (N, H, W) or
            None, scores (N,))`` per group.
        scale: map value at full heat, shared by every overlay.
    """
    n_cols = max(len(images) for _, images, _, _, _ in groups)
    rows_per = [3 if masks is not None else 2 for _, _, _, masks, _ in groups]
    fig = Figure(figsize=(1.25 * n_cols, 1.3 * sum(rows_per) + 0.4), layout="constrained")
    axes = fig.subplots(sum(rows_per), n_cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.axis("off")
    top = 0
    for (name, images, maps, masks, scores), n_rows in zip(groups, rows_per, strict=True):
        for c in range(len(images)):
            img = np.clip(np.moveaxis(images[c], 0, -1), 0, 1)
            pictures = [img.squeeze(-1) if img.shape[-1] == 1 else img]
            pictures.append(overlay(images[c], maps[c], scale))
            if masks is not None:
                pictures.append(masks[c].astype(np.float32))
            for k, picture in enumerate(pictures):
                ax = axes[top + k, c]
                ax.axis("on")
                ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
            axes[top, c].set_title(f"{scores[c]:.3g}", fontsize=7)
        labels = [f"{name}\nimage", "map", "mask"][:n_rows]
        for k, label in enumerate(labels):
            axes[top + k, 0].set_ylabel(label, fontsize=8)
        top += n_rows
    fig.suptitle("Test images (score above), anomaly maps and ground truth")
    return fig


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as PNG (rendered by Agg whatever the current backend) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    return path
