"""Pixel-level metrics: how well anomaly maps find the defect pixels of ground-truth masks.

Pure functions on arrays. ``masks`` are (N, H, W) in {0, 1} (1 = defect pixel; bool or any
integer type), ``maps`` are (N, H, W) anomaly maps of the same shape (higher = more anomalous,
any real dtype). A single (H, W) image is accepted too. Every pixel of every image is pooled.

- :func:`pixel_auroc`: AUROC of the map values over all pixels, defect pixels as positives.
  Large images with few defects favour it: a map that finds the object but not the defect can
  still score high, since most normal pixels are easy.
- :func:`aupro`: the area under the per-region overlap (PRO) curve up to a false positive rate
  ``fpr_limit`` (MVTec AD's metric, Bergmann et al., CVPR 2019 and IJCV 2021). Every connected
  defect region weighs the same whatever its size, so small defects count as much as big ones,
  and only the low-FPR end of the curve, where a detector is usable, is scored.

A pixel is flagged at threshold t when ``map >= t`` (the decision used everywhere in anomalia).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from anomalia.errors import ConfigError, DataError

#: Connected defect regions are found with 8-connectivity (diagonal neighbours join), as in
#: MVTec AD's evaluation code.
CONNECTIVITY = np.ones((3, 3), dtype=bool)
_CHUNK = 1 << 20  # positives compared at a time in pixel_auroc (bounds its memory)


def _check(masks: Any, maps: Any) -> tuple[np.ndarray, np.ndarray]:
    """(bool defect masks (N, H, W), maps (N, H, W) as a real dtype) or a DataError."""
    masks = np.asarray(masks)
    maps = np.asarray(maps)
    if masks.shape != maps.shape or masks.ndim not in (2, 3):
        raise DataError(
            f"masks {masks.shape} and maps {maps.shape} must have one shape, (N, H, W) or (H, W)"
        )
    if masks.ndim == 2:
        masks, maps = masks[None], maps[None]
    if masks.dtype != np.bool_:
        if not ((masks == 0) | (masks == 1)).all():  # np.isin would take 12x the memory
            raise DataError(
                f"masks must be binary (0 = normal pixel, 1 = defect pixel), got values "
                f"{np.unique(masks)[:5].tolist()}...; binarise them (mask > 0)"
            )
        masks = masks.astype(bool)
    if not np.issubdtype(maps.dtype, np.floating):
        maps = maps.astype(np.float64)  # integers, and bool maps as 0/1
    n_bad = int(np.count_nonzero(~np.isfinite(maps)))
    if n_bad:
        raise DataError(f"{n_bad} map values are NaN or infinite")
    n_defect = int(np.count_nonzero(masks))
    if n_defect == 0:
        raise DataError("the masks hold no defect pixel; pixel metrics need at least one")
    if n_defect == masks.size:
        raise DataError("the masks hold no normal pixel; pixel metrics need at least one")
    return masks, maps


def pixel_auroc(masks: Any, maps: Any) -> float:
    """Area under the ROC curve of the map values over every pixel, pooled over all images.

    Exact (ties count one half, as in :func:`sklearn.metrics.roc_auc_score`): the probability
    that a defect pixel scores above a normal one. Computed from the sorted normal pixels, a
    chunk of defect pixels at a time, so the memory is about one copy of the maps.

    Raises:
        DataError: shapes differ, masks are not binary, a map value is not finite, or there is
            no defect or no normal pixel.
    """
    masks, maps = _check(masks, maps)
    normal = np.sort(maps[~masks])  # (n_normal,)
    defect = maps[masks]  # (n_defect,)
    # per defect pixel: (#normal below) + (#normal below or equal) = 2 * (below + ties / 2)
    twice_wins = 0
    for start in range(0, len(defect), _CHUNK):
        chunk = defect[start : start + _CHUNK]
        twice_wins += int(np.searchsorted(normal, chunk, side="left").sum())
        twice_wins += int(np.searchsorted(normal, chunk, side="right").sum())
    return twice_wins / (2.0 * len(normal) * len(defect))


def _check_fpr_limit(fpr_limit: float) -> None:
    if not 0 < fpr_limit <= 1:
        raise ConfigError(f"fpr_limit must be in (0, 1], got {fpr_limit}")


def pro_curve(masks: Any, maps: Any, *, fpr_limit: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The per-region overlap curve, exact, from FPR 0 up to ``fpr_limit``.

    At a threshold t, a defect region's overlap is the share of its pixels with map >= t; PRO is
    the mean overlap over every connected region (8-connectivity, see :data:`CONNECTIVITY`) of
    every mask; FPR is the share of all normal pixels with map >= t. One point per distinct map
    value, from t = +inf (FPR 0, PRO 0) down; the last point is interpolated linearly at exactly
    ``fpr_limit`` (ties move FPR and PRO together along a straight segment, as in a ROC curve).

    Only pixels scoring at least the normal pixel where FPR passes ``fpr_limit`` are sorted, so
    time and memory stay near one copy of the maps even for millions of pixels.

    Returns:
        (fpr, pro): float64 arrays, both non-decreasing, from (0, 0) to (fpr_limit, PRO there).

    Raises:
        DataError: as for :func:`pixel_auroc`.
        ConfigError: ``fpr_limit`` is not in (0, 1].
    """
    _check_fpr_limit(fpr_limit)
    masks, maps = _check(masks, maps)
    # weight of each defect pixel in PRO: 1 / (number of regions * size of its region)
    # (n_defect,) region index of each defect pixel, in the order of maps[masks]
    regions: list[np.ndarray] = []
    n_regions = 0
    for mask in masks:
        found, count = ndimage.label(mask, structure=CONNECTIVITY)
        regions.append(found[mask] - 1 + n_regions)
        n_regions += count
    region_of = np.concatenate(regions)
    region_size = np.bincount(region_of, minlength=n_regions)
    defect_scores = maps[masks]
    defect_weights = 1.0 / (n_regions * region_size[region_of].astype(np.float64))
    del regions, region_of

    normal_scores = maps[~masks]  # a copy, partitioned in place below
    n_normal = len(normal_scores)
    # ``lowest``, the m-th highest normal value: thresholds above it flag at most m - 1 <=
    # fpr_limit * n_normal normal pixels, and it flags more (or all of them), so the curve
    # reaches the limit by the point of ``lowest``; pixels below it are never needed
    m = min(n_normal, int(np.floor(fpr_limit * n_normal)) + 1)
    normal_scores.partition(n_normal - m)
    lowest = normal_scores[n_normal - m]
    normal_scores = normal_scores[normal_scores >= lowest]  # ties of ``lowest`` too
    n_kept = len(normal_scores)
    keep = defect_scores >= lowest
    scores = np.concatenate([normal_scores, defect_scores[keep]])
    weights = np.concatenate([np.zeros(n_kept), defect_weights[keep]])
    del normal_scores, defect_scores, defect_weights, keep

    order = np.argsort(-scores, kind="stable")  # descending
    scores = scores[order]
    false_positives = np.cumsum(order < n_kept)  # the normal pixels come first in ``scores``
    overlap = weights[order]
    del order, weights
    np.cumsum(overlap, out=overlap)
    # one point per distinct value: the last pixel of each run of equal scores
    last = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])
    fpr = np.r_[0.0, false_positives[last] / n_normal]
    pro = np.r_[0.0, overlap[last]]

    beyond = np.flatnonzero(fpr > fpr_limit)
    if len(beyond) == 0:  # fpr_limit == 1: the curve ends at (1, PRO)
        return fpr, pro
    j = beyond[0]  # fpr[j - 1] <= fpr_limit < fpr[j]
    share = (fpr_limit - fpr[j - 1]) / (fpr[j] - fpr[j - 1])
    pro_at_limit = pro[j - 1] + share * (pro[j] - pro[j - 1])
    return np.r_[fpr[:j], fpr_limit], np.r_[pro[:j], pro_at_limit]


def aupro(masks: Any, maps: Any, *, fpr_limit: float = 0.3) -> float:
    """Area under the PRO curve from FPR 0 to ``fpr_limit``, divided by ``fpr_limit``.

    The division makes a perfect map (every defect pixel above every normal one) score 1 and
    a map of random values about ``fpr_limit / 2`` (PRO = FPR on average): 0.15 at the usual
    limit of 0.3. The result lies in [0, 1] since PRO never exceeds 1. The curve is exact (see
    :func:`pro_curve`), with no threshold grid to choose.

    Args:
        masks: ground truth, (N, H, W) in {0, 1}.
        maps: anomaly maps, (N, H, W), higher = more anomalous.
        fpr_limit: the false positive rate the area stops at, in (0, 1].

    Raises:
        DataError: as for :func:`pixel_auroc`.
        ConfigError: ``fpr_limit`` is not in (0, 1].
    """
    fpr, pro = pro_curve(masks, maps, fpr_limit=fpr_limit)
    # trapezoids; the widths add up to fpr_limit exactly, up to rounding
    area = float(np.sum(np.diff(fpr) * (pro[1:] + pro[:-1]) / 2.0))
    return area / fpr_limit
