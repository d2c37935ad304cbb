"""A synthetic inspection dataset with pixel-exact defect masks, in MVTec AD's layout.

No real inspection data can be downloaded in every setting, so this module draws one: a textured
object (a rounded square of woven fabric on a dark background, with a slight random position,
rotation and brightness per image) and four kinds of small defects pasted onto it, each with its
exact mask:

- ``hole``: a near-black ellipse;
- ``missing``: a bite out of the object's edge, replaced by the background;
- ``scratch``: a thin bright curve;
- ``stain``: a darker, tinted blob.

Defects cover about 0.5-4 % of the image, so a detector that averages its error over the whole
image barely sees them; anomaly maps and pixel metrics are what they are for.

The mask of a defect is exactly the set of pixels it changes: every kind of defect changes
every pixel it covers (the value ranges of object, background and defects are disjoint in the
first channel) and leaves every other pixel as it was. :func:`render_sample` returns the clean
render beside the defective one, so this can be checked.

Every image is drawn from its own seed, ``(seed, split, kind, index)``, so the same seed writes
byte-identical files, and changing one count leaves the other images as they were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anomalia.errors import ConfigError, DataError

#: The defect kinds, in the order of their class numbers (1, 2, ...) in :func:`load_mvtec`.
DEFECT_TYPES = ("hole", "missing", "scratch", "stain")
#: Colours (R, G, B) and grey levels of the object and the background.
_OBJECT_RGB, _OBJECT_GREY = (176.0, 142.0, 96.0), 150.0
_BACKGROUND_RGB, _BACKGROUND_GREY = (42.0, 44.0, 50.0), 45.0
_SPLITS = ("train", "test")


@dataclass(frozen=True)
class Sample:
    """One rendered image: the clean object, the same with its defect, and the defect's mask.

    ``clean`` and ``image`` are uint8 (C, S, S); ``mask`` is uint8 (S, S) in {0, 1}, all zero
    (and ``image`` equal to ``clean``) for a normal sample.
    """

    clean: np.ndarray
    image: np.ndarray
    mask: np.ndarray


@dataclass(frozen=True)
class DefectDatasetSummary:
    """What :func:`write_defect_dataset` wrote.

    Attributes:
        root: the dataset folder (read it with ``load_mvtec(root)``).
        counts: images per folder, e.g. ``{"train/good": 400, "test/hole": 25, ...}``.
        defect_area: mean share of the image area the masks of each defect kind cover.
    """

    root: Path
    counts: dict[str, int] = field(default_factory=dict)
    defect_area: dict[str, float] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{self.root}: {sum(self.counts.values())} images"]
        lines += [f"  {folder:<16} {n:>5}" for folder, n in self.counts.items()]
        lines += [
            f"  {kind:<16} mean defect area {share:.2%} of the image"
            for kind, share in self.defect_area.items()
        ]
        return "\n".join(lines)


def _check_sizes(size: int, channels: int) -> None:
    if isinstance(size, bool) or size < 16:
        raise ConfigError(f"size must be at least 16 pixels, got {size}")
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")


def _colour(rgb: tuple[float, float, float], grey: float, channels: int) -> np.ndarray:
    return np.array(rgb if channels == 3 else (grey,), dtype=np.float64)[:, None, None]


def _object_sdf(
    yy: np.ndarray, xx: np.ndarray, centre: np.ndarray, angle: float, half: float, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(signed distance to a rotated rounded square, negative inside; rotated u, v)."""
    cos, sin = np.cos(angle), np.sin(angle)
    dy, dx = yy - centre[0], xx - centre[1]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    qu, qv = np.abs(u) - (half - radius), np.abs(v) - (half - radius)
    outside = np.hypot(np.maximum(qu, 0.0), np.maximum(qv, 0.0))
    return outside + np.minimum(np.maximum(qu, qv), 0.0) - radius, u, v


def _render_clean(
    rng: np.random.Generator, size: int, channels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(clean uint8 (C, S, S), background uint8 (C, S, S), object bool (S, S), signed distance
    to the object's edge in pixels (S, S), negative inside)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5  # pixel centres
    # background: a dark, slightly graded surface with fine noise (first channel <= 42+6+8)
    gradient = 6.0 * yy / size
    noise = np.clip(rng.normal(0.0, 3.0, (size, size)), -8.0, 8.0)
    background = _colour(_BACKGROUND_RGB, _BACKGROUND_GREY, channels) + gradient + noise
    # the object: a rounded square of woven texture, placed, turned and lit a little differently
    centre = size / 2 + rng.uniform(-0.04, 0.04, 2) * size
    angle = np.deg2rad(rng.uniform(-10.0, 10.0))
    sdf, u, v = _object_sdf(yy, xx, centre, angle, 0.30 * size, 0.08 * size)
    period = size / 8
    weave = 18.0 * np.sin(2 * np.pi * u / period) * np.sin(2 * np.pi * v / period)
    brightness = rng.uniform(0.92, 1.08)
    grain = np.clip(rng.normal(0.0, 3.0, (size, size)), -8.0, 8.0)
    # first channel in [176 * 0.92 - 26, 176 * 1.08 + 26] = [136, 216] (grey: [112, 188])
    surface = _colour(_OBJECT_RGB, _OBJECT_GREY, channels) * brightness + weave + grain
    inside = sdf <= 0
    clean = np.where(inside, surface, background)
    return _to_uint8(clean), _to_uint8(background), inside, sdf


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def _point_inside(rng: np.random.Generator, sdf: np.ndarray, margin: float) -> np.ndarray:
    """(y, x) of a random pixel centre at least ``margin`` pixels inside the object."""
    candidates = np.argwhere(sdf <= -margin)
    if len(candidates) == 0:  # tiny images: anywhere inside
        candidates = np.argwhere(sdf <= 0)
    return candidates[rng.integers(len(candidates))].astype(np.float64) + 0.5


def _defect_shape(kind: str, rng: np.random.Generator, sdf: np.ndarray, size: int) -> np.ndarray:
    """Boolean (S, S): the pixels a defect of ``kind`` covers (before clipping to the object)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    if kind == "hole":  # an ellipse of semi-axes 5-9 % and 4-6 % of the side
        cy, cx = _point_inside(rng, sdf, 0.1 * size)
        a, b = rng.uniform(0.05, 0.09) * size, rng.uniform(0.04, 0.06) * size
        angle = rng.uniform(0, np.pi)
        cos, sin = np.cos(angle), np.sin(angle)
        along = (xx - cx) * cos + (yy - cy) * sin
        across = (yy - cy) * cos - (xx - cx) * sin
        return (along / a) ** 2 + (across / b) ** 2 <= 1.0
    if kind == "missing":  # a disc of radius 8-12 % of the side centred on the edge
        edge = np.argwhere(np.abs(sdf) <= 1.0)
        cy, cx = edge[rng.integers(len(edge))].astype(np.float64) + 0.5
        radius = rng.uniform(0.08, 0.12) * size
        return np.hypot(yy - cy, xx - cx) <= radius
    if kind == "scratch":  # a quadratic Bezier curve, 25-45 % of the side long, ~1.5 px wide
        start = _point_inside(rng, sdf, 0.05 * size)
        direction = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.25, 0.45) * size
        end = start + length * np.array([np.sin(direction), np.cos(direction)])
        normal = np.array([np.cos(direction), -np.sin(direction)])
        control = (start + end) / 2 + rng.uniform(-0.25, 0.25) * length * normal
        t = np.linspace(0.0, 1.0, max(8, int(4 * length)))[:, None]
        curve = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end  # (T, 2)
        half_width = rng.uniform(0.55, 0.95) * max(1.0, size / 64)
        near = np.zeros((size, size), dtype=bool)
        for cy, cx in curve:
            near |= (yy - cy) ** 2 + (xx - cx) ** 2 <= half_width**2
        return near
    if kind == "stain":  # 3-5 overlapping discs of radius 4-7 % of the side
        cy, cx = _point_inside(rng, sdf, 0.1 * size)
        blob = np.zeros((size, size), dtype=bool)
        for _ in range(rng.integers(3, 6)):
            oy, ox = rng.uniform(-0.05, 0.05, 2) * size
            radius = rng.uniform(0.04, 0.07) * size
            blob |= np.hypot(yy - cy - oy, xx - cx - ox) <= radius
        return blob
    raise ConfigError(f"defect must be one of {', '.join(DEFECT_TYPES)} or None, got {kind!r}")


def render_sample(
    defect: str | None, rng: np.random.Generator, *, size: int = 64, channels: int = 3
) -> Sample:
    """Draw one object, with a defect of kind ``defect`` (one of :data:`DEFECT_TYPES`) or
    none, from ``rng``.

    The defect is clipped to the object and changes every pixel of its mask: a hole is near
    black (first channel <= 30, the object's >= 112), a scratch bright (>= 230, the object's
    <= 216), a stain darkens the first channel by 40-70, a missing part shows the background
    (<= 56). The same ``rng`` state gives the same sample.
    """
    _check_sizes(size, channels)
    clean, background, inside, sdf = _render_clean(rng, size, channels)
    if defect is None:
        return Sample(clean, clean.copy(), np.zeros((size, size), dtype=np.uint8))
    mask = _defect_shape(defect, rng, sdf, size) & inside
    image = clean.astype(np.int16)
    n = int(mask.sum())
    if defect == "hole":
        image[:, mask] = rng.integers(8, 31, n)  # the same dark level in every channel
    elif defect == "missing":
        image[:, mask] = background[:, mask]
    elif defect == "scratch":
        image[:, mask] = rng.integers(230, 256, n)
    else:  # stain: darker, and tinted in colour images
        shift = np.array([-1.0, -0.7, 0.1][:channels])[:, None] * rng.uniform(40, 70)
        image[:, mask] = image[:, mask] + np.rint(shift).astype(np.int16)
    return Sample(clean, np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8))


def _save(path: Path, pixels: np.ndarray) -> None:
    """Write uint8 (C, H, W) or (H, W) as a PNG (deterministic bytes for the same pixels)."""
    from PIL import Image

    if pixels.ndim == 3:
        pixels = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels)).save(path, format="PNG")


def write_defect_dataset(
    root: str | Path,
    *,
    n_train_good: int = 400,
    n_train_defects: int = 5,
    n_test_good: int = 100,
    n_test_defects: int = 25,
    size: int = 64,
    seed: int = 0,
    channels: int = 3,
) -> DefectDatasetSummary:
    """Write a synthetic dataset in MVTec AD's layout, masks included, to the folder ``root``.

    Layout (``<i>`` = 000, 001, ...; ``<kind>`` = each of :data:`DEFECT_TYPES`)::

        train/good/<i>.png                        normal training images
        train/<kind>/<i>.png                      labelled training defects
        test/good/<i>.png, test/<kind>/<i>.png    the test set
        ground_truth/<kind>/<i>_mask.png          masks of the test defects (255 = defect)
        ground_truth/train/<kind>/<i>_mask.png    masks of the training defects

    Training defects keep their masks in ``ground_truth/train/`` because their names are also
    test image names (see :mod:`anomalia.data.folders`).

    Args:
        root: folder to write; must not exist or be empty.
        n_train_good: normal training images.
        n_train_defects: labelled training images per defect kind (0: none, no such folders).
        n_test_good: normal test images.
        n_test_defects: test images per defect kind.
        size: side of the square images, at least 16.
        seed: the seed every image's own seed is made from.
        channels: 3 (RGB) or 1 (grey).

    Raises:
        ConfigError: a count, the size or the channels are out of range.
        DataError: ``root`` exists and is not an empty folder.
    """
    _check_sizes(size, channels)
    counts = {
        "n_train_good": n_train_good,
        "n_train_defects": n_train_defects,
        "n_test_good": n_test_good,
        "n_test_defects": n_test_defects,
    }
    for name, value in counts.items():
        at_least = 0 if name == "n_train_defects" else 1
        if isinstance(value, bool) or value < at_least:
            raise ConfigError(f"{name} must be at least {at_least}, got {value}")
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise DataError(f"{root}: exists and is not an empty folder; remove it or pick another")
    plan = [
        ("train", None, n_train_good),
        *[("train", kind, n_train_defects) for kind in DEFECT_TYPES if n_train_defects],
        ("test", None, n_test_good),
        *[("test", kind, n_test_defects) for kind in DEFECT_TYPES],
    ]
    written: dict[str, int] = {}
    areas: dict[str, list[float]] = {kind: [] for kind in DEFECT_TYPES}
    for split, kind, n in plan:
        folder = kind or "good"
        kind_id = 0 if kind is None else DEFECT_TYPES.index(kind) + 1
        # training masks apart: their names are test image names too
        mask_dir = root / "ground_truth" / folder
        if split == "train":
            mask_dir = root / "ground_truth" / "train" / folder
        for i in range(n):
            rng = np.random.default_rng([seed, _SPLITS.index(split), kind_id, i])
            sample = render_sample(kind, rng, size=size, channels=channels)
            _save(root / split / folder / f"{i:03d}.png", sample.image)
            if kind is not None:
                _save(mask_dir / f"{i:03d}_mask.png", sample.mask * np.uint8(255))
                areas[kind].append(float(sample.mask.mean()))
        written[f"{split}/{folder}"] = n
    (root / "README.txt").write_text(
        "Synthetic defects written by anomalia.data.synthetic.write_defect_dataset("
        f"size={size}, channels={channels}, seed={seed}); MVTec AD's layout, masks in "
        "ground_truth/ (training defects: ground_truth/train/). Read with "
        "anomalia.data.load_mvtec or --dataset mvtec --data-dir <this folder>.\n"
    )
    return DefectDatasetSummary(
        root=root,
        counts=written,
        defect_area={kind: float(np.mean(shares)) for kind, shares in areas.items() if shares},
    )
