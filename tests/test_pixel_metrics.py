"""Pixel metrics: pixel AUROC against scikit-learn, AUPRO by hand and by its invariants."""

from __future__ import annotations

from fractions import Fraction

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from anomalia.errors import ConfigError, DataError
from anomalia.evaluation import aupro, pixel_auroc, pro_curve


def blobs(n: int, side: int, seed: int) -> np.ndarray:
    """uint8 masks (n, side, side): a few rectangles of random size per image, some empty."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, side, side), dtype=np.uint8)
    for mask in masks[: n * 2 // 3]:
        for _ in range(rng.integers(1, 4)):
            top, left = rng.integers(0, side - 4, 2)
            height, width = rng.integers(1, 5, 2)
            mask[top : top + height, left : left + width] = 1
    return masks


@pytest.mark.parametrize("seed", range(5))
def test_pixel_auroc_agrees_with_sklearn(seed):
    rng = np.random.default_rng(seed)
    masks = blobs(6, 10, seed)
    maps = rng.integers(0, 8, masks.shape) + 1.5 * masks * rng.random(masks.shape)  # with ties
    expected = roc_auc_score(masks.ravel(), maps.ravel())
    assert pixel_auroc(masks, maps) == pytest.approx(expected, abs=1e-12)
    assert pixel_auroc(masks.astype(bool), maps.astype(np.float32)) == pytest.approx(
        roc_auc_score(masks.ravel(), maps.astype(np.float32).ravel()), abs=1e-12
    )


# One 4x4 image, two regions (8-connectivity): A = the 2x2 block top left, B = one pixel.
#   mask        map
#   A A . .     .9 .9 .7 .1
#   A A . .     .5 .5 .4 .1
#   . . . .     .1 .1 .1 .1
#   . . . B     .1 .1 .1 .1
# 11 normal pixels: one at .7, one at .4, nine at .1; B scores .1 like them.
# Thresholds from the top (PRO = mean of A's and B's overlap, FPR = normal pixels flagged / 11):
#   t = .9: A 2/4, B 0 -> PRO 1/4,  FPR 0
#   t = .7:                PRO 1/4,  FPR 1/11
#   t = .5: A 4/4     -> PRO 1/2,  FPR 1/11
#   t = .4:                PRO 1/2,  FPR 2/11
#   t = .1: B 1/1     -> PRO 1,    FPR 11/11 (B and nine normal pixels together: a slope)
# At fpr_limit = 3/10 the slope from (2/11, 1/2) to (1, 1) is interpolated:
#   PRO(3/10) = 1/2 + (3/10 - 2/11) / (9/11) * 1/2 = 1/2 + 13/180 = 103/180
# Area = 1/11 * 1/4 + 1/11 * 1/2 + (3/10 - 2/11) * (1/2 + 103/180) / 2
#      = 1/44 + 1/22 + 13/110 * 193/360 = 2700/39600 + 2509/39600 = 5209/39600
# AUPRO = area / (3/10) = 5209/11880 = 0.43847...
HAND_MASK = np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 1]], dtype=np.uint8)
HAND_MAP = np.array(
    [[0.9, 0.9, 0.7, 0.1], [0.5, 0.5, 0.4, 0.1], [0.1, 0.1, 0.1, 0.1], [0.1, 0.1, 0.1, 0.1]]
)


def test_aupro_by_hand():
    fpr, pro = pro_curve(HAND_MASK[None], HAND_MAP[None], fpr_limit=0.3)
    np.testing.assert_allclose(fpr, [0, 0, 1 / 11, 1 / 11, 2 / 11, 0.3])
    np.testing.assert_allclose(pro, [0, 1 / 4, 1 / 4, 1 / 2, 1 / 2, 103 / 180])
    expected = float(Fraction(5209, 11880))
    assert aupro(HAND_MASK[None], HAND_MAP[None], fpr_limit=0.3) == pytest.approx(expected)
    assert aupro(HAND_MASK, HAND_MAP, fpr_limit=0.3) == pytest.approx(expected)  # (H, W) too
    # the whole curve: ends at (1, 1), area 5209/39600 + the rest of the slope
    fpr, pro = pro_curve(HAND_MASK, HAND_MAP)
    assert (fpr[-1], pro[-1]) == (1.0, 1.0)


def test_regions_are_8_connected():
    """Two diagonal pixels are one region of 2 (8-connectivity), not two regions of 1."""
    mask = np.zeros((5, 5), dtype=np.uint8)
    mask[0, 0] = mask[1, 1] = mask[4, 4] = 1  # region {(0,0), (1,1)} and region {(4,4)}
    scores = np.zeros((5, 5))
    scores[0, 0] = 1.0  # only (0, 0) scores high
    _, pro = pro_curve(mask, scores)
    assert pro[1] == pytest.approx((1 / 2 + 0) / 2)  # 4-connectivity would give 1/3


def test_perfect_map_scores_one():
    masks = blobs(20, 16, seed=1)
    maps = masks + 0.9 * np.random.default_rng(1).random(masks.shape)  # defects all above
    for limit in (0.01, 0.3, 1.0):
        assert aupro(masks, maps, fpr_limit=limit) == pytest.approx(1.0, abs=1e-6)
    assert pixel_auroc(masks, maps) == 1.0


def test_random_map_scores_about_half_the_limit():
    masks = blobs(200, 32, seed=2)
    maps = np.random.default_rng(2).random(masks.shape)
    assert aupro(masks, maps) == pytest.approx(0.15, abs=0.03)
    assert aupro(masks, maps, fpr_limit=0.1) == pytest.approx(0.05, abs=0.02)
    assert pixel_auroc(masks, maps) == pytest.approx(0.5, abs=0.03)


def test_inverted_map_scores_below_random():
    masks = blobs(50, 16, seed=3)
    rng = np.random.default_rng(3)
    good = masks + 0.8 * rng.random(masks.shape)
    random = rng.random(masks.shape)
    assert aupro(masks, -good) < aupro(masks, random) < aupro(masks, good)
    assert aupro(masks, -good) < 0.01
    assert pixel_auroc(masks, -good) < 0.01


def test_invariant_to_a_monotone_transform():
    masks = blobs(30, 12, seed=4)
    rng = np.random.default_rng(4)
    maps = rng.integers(0, 40, masks.shape) / 8 + masks * rng.integers(0, 8, masks.shape) / 8
    transformed = 2.0**maps - 7.0  # strictly increasing: same order, same ties
    assert aupro(masks, transformed) == pytest.approx(aupro(masks, maps), abs=1e-12)
    assert pixel_auroc(masks, transformed) == pytest.approx(pixel_auroc(masks, maps), abs=1e-12)
    # ties in the map do matter: a coarser map (fewer distinct values) scores differently
    assert aupro(masks, np.floor(maps)) != pytest.approx(aupro(masks, maps), abs=1e-6)


@settings(max_examples=150, deadline=None)
@given(
    masks=hnp.arrays(
        np.uint8, hnp.array_shapes(min_dims=3, max_dims=3, max_side=6), elements=st.integers(0, 1)
    ),
    data=st.data(),
    fpr_limit=st.floats(0.01, 1.0),
)
def test_metrics_always_lie_in_zero_one(masks, data, fpr_limit):
    assume(masks.any() and not masks.all())
    maps = data.draw(
        hnp.arrays(
            np.float64,
            masks.shape,
            elements=st.one_of(st.sampled_from([0.0, 1.0, 2.0]), st.floats(-1e6, 1e6)),
        )
    )
    value = aupro(masks, maps, fpr_limit=fpr_limit)
    # rounding only: the widths add up to fpr_limit and the region weights to 1, each to
    # within a few ulps; a normalisation bug would be far above
    assert 0.0 <= value <= 1.0 + 1e-12
    fpr, pro = pro_curve(masks, maps, fpr_limit=fpr_limit)
    assert fpr[-1] == pytest.approx(fpr_limit) and np.all(np.diff(fpr) >= 0)
    assert np.all(np.diff(pro) >= -1e-12) and pro[-1] <= 1.0 + 1e-12
    assert 0.0 <= pixel_auroc(masks, maps) <= 1.0


@pytest.mark.parametrize(
    ("masks", "maps", "message"),
    [
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 5)), "must have one shape"),
        (np.zeros(16), np.zeros(16), "must have one shape"),
        (np.zeros((2, 4, 4)), np.zeros((2, 4, 4)), "no defect pixel"),
        (np.ones((2, 4, 4)), np.zeros((2, 4, 4)), "no normal pixel"),
        (np.eye(4) * 2, np.zeros((4, 4)), "masks must be binary"),
        (np.eye(4) * 0.5, np.zeros((4, 4)), "masks must be binary"),
        (np.eye(4), np.full((4, 4), np.nan), "16 map values are NaN or infinite"),
        (np.eye(4), np.diag([np.inf, 0, 0, 0]), "1 map values are NaN or infinite"),
    ],
)
def test_bad_input_is_a_data_error(masks, maps, message):
    for metric in (pixel_auroc, aupro, pro_curve):
        with pytest.raises(DataError, match=message):
            metric(masks, maps)


@pytest.mark.parametrize("fpr_limit", [0.0, -0.1, 1.5])
def test_fpr_limit_out_of_range(fpr_limit):
    with pytest.raises(ConfigError, match=f"fpr_limit must be in \\(0, 1\\], got {fpr_limit}"):
        aupro(HAND_MASK, HAND_MAP, fpr_limit=fpr_limit)
