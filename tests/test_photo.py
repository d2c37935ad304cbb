"""The photo-like renderer and its MVTec-layout writer, on tiny synthetic inputs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomalia.data import ImageData, load_mvtec, make_split
from anomalia.data.photo import (
    PhotoStyle,
    class_folder,
    default_canvas_size,
    render_photo_like,
    write_photo_like,
)
from anomalia.errors import ConfigError, DataError

N_CLASSES = 4
SIDE = 14


def shapes(labels: np.ndarray) -> np.ndarray:
    """uint8 (N, 1, SIDE, SIDE): class c is a bright filled shape (square, bar, cross, disc)
    centred on black, like Fashion-MNIST's garments."""
    yy, xx = np.mgrid[0:SIDE, 0:SIDE] - (SIDE - 1) / 2
    masks = [
        (abs(yy) < 4) & (abs(xx) < 4),
        (abs(yy) < 6) & (abs(xx) < 2),
        ((abs(yy) < 1.5) | (abs(xx) < 1.5)) & (abs(yy) < 6) & (abs(xx) < 6),
        yy**2 + xx**2 < 25,
    ]
    return np.stack([masks[int(c)][None] * np.uint8(220) for c in labels])


def tiny_data(n_train_per_class: int = 6, n_test_per_class: int = 3) -> ImageData:
    train_labels = np.repeat(np.arange(N_CLASSES), n_train_per_class)
    test_labels = np.tile(np.arange(N_CLASSES), n_test_per_class)
    return ImageData(
        name="shapes",
        train_images=shapes(train_labels),
        train_labels=train_labels,
        test_images=shapes(test_labels),
        test_labels=test_labels,
        class_names=("Square", "Bar/Stick", "cross", "Disc"),
        source="test",
    )


def digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# --------------------------------------------------------------------------- rendering
def test_render_shape_and_default_canvas():
    images = shapes(np.arange(N_CLASSES))
    out = render_photo_like(images, seed=0)
    assert out.dtype == np.uint8 and out.shape == (N_CLASSES, 3, 24, 24)
    assert default_canvas_size(28) == 48 and default_canvas_size(SIDE) == 24
    assert render_photo_like(images[:, 0], seed=0, canvas_size=40).shape == (N_CLASSES, 3, 40, 40)


def test_same_seed_same_pixels_other_seed_other_pixels():
    images = shapes(np.zeros(5, dtype=int))
    a = render_photo_like(images, seed=3)
    assert np.array_equal(a, render_photo_like(images, seed=3))
    assert not np.array_equal(a, render_photo_like(images, seed=4))
    assert not np.array_equal(a, render_photo_like(images, seed=3, split="test"))


def test_an_image_does_not_depend_on_the_others():
    """Each image has its own seed (seed, split, index): rendering a subset, in another batch
    or in another order, gives the same pixels."""
    images = shapes(np.arange(12) % N_CLASSES)
    full = render_photo_like(images, seed=1)
    picked = np.array([7, 2, 11])
    alone = render_photo_like(images[picked], seed=1, indices=picked)
    assert np.array_equal(full[picked], alone)


def _object_centroid(rendered: np.ndarray, plain: np.ndarray) -> np.ndarray:
    """Centroid (y, x) of the pixels that differ from a render of an empty input (the same
    background and noise: the same seeds)."""
    diff = np.abs(rendered.astype(int) - plain.astype(int)).sum(axis=0) > 30
    yy, xx = np.nonzero(diff)
    return np.array([yy.mean(), xx.mean()])


def test_pose_and_colours_vary_from_image_to_image():
    n = 24
    images = shapes(np.zeros(n, dtype=int))  # the same square, n times
    wide = PhotoStyle(max_rotation=45.0, scale=(0.6, 1.1), max_shift=1.0)  # the ranges at work
    out = render_photo_like(images, seed=0, style=wide)
    empty = render_photo_like(np.zeros_like(images), seed=0, style=wide)
    centroids = np.stack([_object_centroid(o, e) for o, e in zip(out, empty, strict=True)])
    assert centroids.std(axis=0).min() > 1.5  # moved around, in both directions
    areas = [
        (np.abs(o.astype(int) - e.astype(int)).sum(axis=0) > 30).sum()
        for o, e in zip(out, empty, strict=True)
    ]
    assert max(areas) > 1.5 * min(areas)  # scaled
    # the object's colour: the mean colour where it is, differs between images
    colours = np.stack(
        [
            o[:, np.abs(o.astype(int) - e.astype(int)).sum(axis=0) > 30].mean(axis=1)
            for o, e in zip(out, empty, strict=True)
        ]
    )
    assert colours.std(axis=0).min() > 20
    # the background is not one flat colour within an image, nor the same across images
    assert all(e.reshape(3, -1).std(axis=1).max() > 2 for e in empty)
    assert empty.reshape(n, 3, -1).mean(axis=2).std(axis=0).min() > 20


def test_a_turned_shape_is_turned():
    """A bar turned by up to 45 degrees: its pixels' principal direction varies."""
    style = PhotoStyle(max_rotation=45.0, scale=(1.0, 1.0), max_shift=0.0, noise=(0.0, 0.0))
    bars = shapes(np.ones(16, dtype=int))
    out = render_photo_like(bars, seed=0, style=style)
    empty = render_photo_like(np.zeros_like(bars), seed=0, style=style)
    angles = []
    for o, e in zip(out, empty, strict=True):
        yy, xx = np.nonzero(np.abs(o.astype(int) - e.astype(int)).sum(axis=0) > 30)
        cov = np.cov(np.stack([yy, xx]))
        _, vectors = np.linalg.eigh(cov)
        dy, dx = vectors[:, -1]
        angles.append(np.degrees(np.arctan2(dx, dy)) % 180)
    angles = np.array([a - 180 if a > 90 else a for a in angles])
    assert np.abs(angles).max() > 20 and np.abs(angles).max() <= 50
    assert np.abs(angles).min() < 20


def test_rgb_inputs_are_accepted():
    rgb = np.repeat(shapes(np.arange(N_CLASSES)), 3, axis=1)
    out = render_photo_like(rgb, seed=0)
    assert out.shape == (N_CLASSES, 3, 24, 24)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"split": "val"}, "split"),
        ({"canvas_size": 4}, "canvas_size"),
        ({"seed": -1}, "seed"),
        ({"indices": np.arange(3)}, "indices"),
    ],
)
def test_bad_render_arguments_name_themselves(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        render_photo_like(shapes(np.arange(N_CLASSES)), **kwargs)


def test_bad_images_and_styles_are_errors():
    with pytest.raises(DataError, match="uint8"):
        render_photo_like(np.zeros((2, 1, 8, 8), dtype=np.float32))
    with pytest.raises(DataError, match="C = 1 or 3"):
        render_photo_like(np.zeros((2, 2, 8, 8), dtype=np.uint8))
    with pytest.raises(ConfigError, match=r"PhotoStyle\.scale"):
        PhotoStyle(scale=(1.1, 0.6))
    with pytest.raises(ConfigError, match=r"PhotoStyle\.max_shift"):
        PhotoStyle(max_shift=2.0)
    with pytest.raises(ConfigError, match=r"PhotoStyle\.noise"):
        PhotoStyle(noise=(-0.1, 0.1))


# ------------------------------------------------------------------------------ folders
def test_class_folders_are_safe_and_sort_in_label_order():
    assert class_folder(0, "T-shirt/top", 10) == "0_t_shirt_top"
    assert class_folder(9, "Ankle boot", 10) == "9_ankle_boot"
    assert class_folder(3, "", 12) == "03"
    assert class_folder(3, "3", 12) == "03"
    names = [class_folder(c, "x", 12) for c in range(12)]
    assert names == sorted(names)


def test_written_folder_loads_with_the_expected_classes_and_counts(tmp_path):
    data = tiny_data()
    summary = write_photo_like(data, tmp_path / "photo", normal_class=1, seed=0, max_per_class=4)
    root = summary.root
    assert summary.class_folders == {0: "0_square", 1: "good", 2: "2_cross", 3: "3_disc"}
    assert summary.counts == {
        "test/0_square": 3, "test/2_cross": 3, "test/3_disc": 3, "test/good": 3,
        "train/0_square": 4, "train/2_cross": 4, "train/3_disc": 4, "train/good": 6,
    }  # fmt: skip
    files = sorted(root.rglob("*.jpg"))
    assert len(files) == sum(summary.counts.values())
    with Image.open(files[0]) as image:
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (24, 24)

    loaded = load_mvtec(root)
    assert loaded.class_names == ("good", "0_square", "2_cross", "3_disc")
    assert loaded.train_images.shape == (6 + 3 * 4, 3, 24, 24)
    assert np.bincount(loaded.train_labels).tolist() == [6, 4, 4, 4]
    assert np.bincount(loaded.test_labels).tolist() == [3, 3, 3, 3]
    # the protocol on such a folder: 5 % labelled anomalies from one other class
    split = make_split(
        loaded.train_labels,
        loaded.test_labels,
        normal_class=0,
        anomaly_ratio=0.25,
        n_known_anomaly_classes=1,
        val_fraction=0.0,
        seed=0,
    )
    labelled = loaded.train_labels[split.train_indices[split.train_targets == 1]]
    assert len(set(labelled.tolist())) == 1 and labelled[0] != 0
    assert len(labelled) == 2  # round(0.25 * 6 / 0.75)


def test_the_same_seed_writes_the_same_bytes(tmp_path):
    data = tiny_data()
    write_photo_like(data, tmp_path / "a", normal_class=0, seed=5)
    write_photo_like(data, tmp_path / "b", normal_class=0, seed=5)
    write_photo_like(data, tmp_path / "c", normal_class=0, seed=6)
    a, b, c = digest(tmp_path / "a"), digest(tmp_path / "b"), digest(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_an_image_file_does_not_depend_on_the_normal_class_or_the_cap(tmp_path):
    data = tiny_data()
    write_photo_like(data, tmp_path / "n0", normal_class=0, seed=0)
    write_photo_like(data, tmp_path / "n2", normal_class=2, seed=0, max_per_class=2)
    same = tmp_path / "n0" / "train" / "2_cross"
    other = tmp_path / "n2" / "train" / "good"
    assert sorted(p.name for p in same.iterdir()) == sorted(p.name for p in other.iterdir())
    for path in same.iterdir():
        assert path.read_bytes() == (other / path.name).read_bytes()


def test_one_class_folder_and_write_errors(tmp_path):
    data = tiny_data()
    summary = write_photo_like(data, tmp_path / "one", normal_class=0, max_per_class=0)
    assert [k for k in summary.counts if k.startswith("train/")] == ["train/good"]
    with pytest.raises(DataError, match="not an empty folder"):
        write_photo_like(data, tmp_path / "one", normal_class=0)
    with pytest.raises(ConfigError, match="normal_class"):
        write_photo_like(data, tmp_path / "x", normal_class=N_CLASSES)
    with pytest.raises(ConfigError, match="max_per_class"):
        write_photo_like(data, tmp_path / "x", normal_class=0, max_per_class=-1)
    with pytest.raises(ConfigError, match="quality"):
        write_photo_like(data, tmp_path / "x", normal_class=0, quality=100)
