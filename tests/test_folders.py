"""Folder datasets of the user's own images (MVTec AD layout and normal/anomaly), written here
with Pillow in every supported format, and the CLI end to end on one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anomalia.cli import main
from anomalia.data import load_dataset
from anomalia.data.folders import load_mvtec, load_normal_anomaly, name_fraction, split_by_name
from anomalia.data.image_files import BadImageError, expand_image_paths, iter_image_batches
from anomalia.errors import ConfigError, DataError

from .conftest import synthetic_images

SUFFIX = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tif"}


def save(path: Path, value: int = 128, size=(16, 16), mode: str = "L", fmt: str = "PNG") -> Path:
    """A flat image of one grey level, so where each file ends up can be checked."""
    colour = value if mode in ("1", "L", "P", "I;16") else (value,) * len(mode)
    return save_image(path, Image.new(mode, size, colour), fmt)


def save_image(path: Path, image: Image.Image, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


def fill(directory: Path, n: int, start: int = 0, **kwargs) -> list[Path]:
    fmt = kwargs.get("fmt", "PNG")
    return [save(directory / f"{i:03d}{SUFFIX[fmt]}", start + i, **kwargs) for i in range(n)]


def truncated_png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(noise).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture
def mvtec_dir(tmp_path) -> Path:
    root = tmp_path / "bottle"
    fill(root / "train" / "good", 6, fmt="PNG")
    fill(root / "train" / "crack", 2, start=100, fmt="BMP")
    fill(root / "test" / "good", 3, start=50, fmt="JPEG")
    fill(root / "test" / "crack", 2, start=150, fmt="TIFF")
    fill(root / "test" / "scratch", 2, start=200, fmt="PNG")
    # masks are ignored, both where MVTec AD keeps them and inside test/
    fill(root / "ground_truth" / "crack", 2, start=255)
    fill(root / "test" / "ground_truth", 1, start=255)
    (root / "license.txt").write_text("not an image, and not read")
    return root


def test_mvtec_layout(mvtec_dir):
    data = load_mvtec(mvtec_dir)
    assert data.class_names == ("good", "crack", "scratch")
    assert data.train_images.shape == (8, 1, 16, 16) and data.train_images.dtype == np.uint8
    assert data.test_images.shape == (7, 1, 16, 16)
    assert data.train_labels.tolist() == [0] * 6 + [1] * 2
    assert data.test_labels.tolist() == [0] * 3 + [1] * 2 + [2] * 2
    # PNG, BMP and TIFF are lossless: the grey level of each file comes back exactly
    assert data.train_images[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5, 100, 101]
    assert data.test_images[3:, 0, 0, 0].tolist() == [150, 151, 200, 201]
    assert np.abs(data.test_images[:3, 0, 0, 0].astype(int) - [50, 51, 52]).max() <= 2  # JPEG
    assert data.skipped_files == [] and data.source == str(mvtec_dir)


def test_mvtec_without_training_defects(mvtec_dir):
    import shutil

    shutil.rmtree(mvtec_dir / "train" / "crack")
    data = load_mvtec(mvtec_dir)
    assert data.class_names == ("good", "crack", "scratch")
    assert set(data.train_labels.tolist()) == {0}


@pytest.mark.parametrize(
    ("modes", "channels"),
    [
        (["L"] * 4, 1),
        (["RGB"] * 4, 3),
        (["L", "L", "L", "RGB"], 1),  # the majority decides
        (["RGB", "RGBA", "P", "L"], 3),  # alpha and palette images count as colour
        (["L", "L", "RGB", "RGB"], 3),  # a tie is colour
        (["1", "I;16", "L", "RGB"], 1),  # 1-bit and 16-bit images are grayscale
    ],
)
def test_channels_follow_the_data(tmp_path, modes, channels):
    for i, mode in enumerate(modes):
        save(tmp_path / "normal" / f"{i}.png", 40 * (i + 1), mode=mode)
        save(tmp_path / "anomaly" / f"{i}.tif", 200, mode=mode, fmt="TIFF")
    data = load_normal_anomaly(tmp_path)
    assert data.train_images.shape[1:] == (channels, 16, 16)
    assert data.test_images.shape[1:] == (channels, 16, 16)


def test_colour_channels_are_rgb_planes(tmp_path):
    for directory in ("normal", "anomaly"):
        for i in range(2):
            save_image(tmp_path / directory / f"{i}.png", Image.new("RGB", (8, 8), (255, 0, 10)))
    data = load_normal_anomaly(tmp_path)
    assert data.train_images[0, :, 0, 0].tolist() == [255, 0, 10]


def test_sixteen_bit_images_are_scaled(tmp_path):
    for directory in ("normal", "anomaly"):
        for i, value in enumerate((65535, 0)):
            image = Image.fromarray(np.full((8, 8), value, dtype=np.uint16))
            save_image(tmp_path / directory / f"{i}.tif", image, "TIFF")
    data = load_normal_anomaly(tmp_path)
    both = np.concatenate([data.train_images, data.test_images])
    assert sorted(both[:, 0, 0, 0].tolist()) == [0, 0, 255, 255]


@pytest.mark.parametrize(
    ("sizes", "image_size", "expected"),
    [
        ([(20, 20)] * 3, None, 20),  # one square size: kept
        ([(20, 20), (24, 24), (20, 20)], None, 64),  # mixed sizes: 64
        ([(30, 20)] * 3, None, 64),  # one size but not square: 64
        ([(20, 20), (31, 17), (64, 48)], 12, 12),  # asked for
    ],
)
def test_image_size(tmp_path, sizes, image_size, expected):
    for i, size in enumerate(sizes):
        save(tmp_path / "normal" / f"{i}.bmp", 10 * i, size=size, fmt="BMP")
        save(tmp_path / "anomaly" / f"{i}.jpg", 200, size=size, mode="RGB", fmt="JPEG")
    data = load_normal_anomaly(tmp_path, image_size=image_size)
    assert data.train_images.shape[-2:] == (expected, expected)
    assert data.test_images.shape[-2:] == (expected, expected)


def test_bad_image_size(tmp_path):
    fill(tmp_path / "normal", 2)
    fill(tmp_path / "anomaly", 2)
    with pytest.raises(ConfigError, match="image_size must be a positive number"):
        load_normal_anomaly(tmp_path, image_size=0)


def test_normal_anomaly_split_is_fixed_and_disjoint(tmp_path):
    fill(tmp_path / "normal", 10, start=0)
    fill(tmp_path / "anomaly", 6, start=100, fmt="TIFF")
    data = load_normal_anomaly(tmp_path)
    assert data.class_names == ("normal", "anomaly")
    train_ids = data.train_images[:, 0, 0, 0].tolist()
    test_ids = data.test_images[:, 0, 0, 0].tolist()
    assert sorted(train_ids + test_ids) == [*range(10), *range(100, 106)]
    assert all((v >= 100) == bool(y) for v, y in zip(train_ids, data.train_labels, strict=True))
    assert all((v >= 100) == bool(y) for v, y in zip(test_ids, data.test_labels, strict=True))
    for labels in (data.train_labels, data.test_labels):  # every side of every class
        assert set(labels.tolist()) == {0, 1}
    again = load_normal_anomaly(tmp_path)
    assert again.test_images[:, 0, 0, 0].tolist() == test_ids
    every_anomaly = load_normal_anomaly(tmp_path, anomaly_test_fraction=1.0)
    assert every_anomaly.test_labels.tolist().count(1) == 6
    assert set(every_anomaly.train_labels.tolist()) == {0}
    with pytest.raises(ConfigError, match="test_fraction must be in"):
        load_normal_anomaly(tmp_path, test_fraction=1.0)


def _sides(data) -> tuple[set[int], set[int]]:
    """Grey levels (file ids) of the normal images in the training and the test set."""
    train = data.train_images[data.train_labels == 0, 0, 0, 0].tolist()
    test = data.test_images[data.test_labels == 0, 0, 0, 0].tolist()
    return set(train), set(test)


def test_adding_or_removing_a_file_moves_no_other(tmp_path):
    normal = fill(tmp_path / "normal", 200)
    fill(tmp_path / "anomaly", 4, start=200)
    train, test = _sides(load_normal_anomaly(tmp_path))
    assert len(train) + len(test) == 200
    assert abs(len(test) / 200 - 0.2) < 0.06  # binomial sd 0.028 around the asked 0.2

    save(tmp_path / "normal" / "new.png", 250)
    train_added, test_added = _sides(load_normal_anomaly(tmp_path))
    assert train_added - {250} == train and test_added - {250} == test

    normal[50].unlink()
    normal[51].unlink()
    train_removed, test_removed = _sides(load_normal_anomaly(tmp_path))
    assert train_removed - {250} == train - {50, 51}
    assert test_removed - {250} == test - {50, 51}


def test_split_by_name_follows_the_fraction_and_keeps_both_sides():
    names = [f"image_{i:05d}.png" for i in range(4000)]
    for fraction in (0.1, 0.5, 0.9):
        assert split_by_name(names, fraction).mean() == pytest.approx(fraction, abs=0.03)
    assert all(0 <= name_fraction(name) < 1 for name in names[:100])
    mask = split_by_name(names, 0.3)
    assert split_by_name(names[::2], 0.3).tolist() == mask[::2].tolist()  # names alone decide
    # too few files for the rule to reach both sides: the extreme values are moved
    ordered = sorted(names[:50], key=name_fraction)
    low, high = ordered[0], ordered[-1]
    assert split_by_name([low, high], 1e-9).tolist() == [True, False]
    assert split_by_name([low, high], 1 - 1e-9).tolist() == [True, False]
    assert split_by_name([high, low], 1.0).tolist() == [True, True]  # all asked for the test set
    assert split_by_name([high], 0.5).tolist() == [True]  # a single file is a test file


def _bad_text_png(path: Path) -> Path:
    path.write_text("this is a text file with an image's name")
    return path


def _bad_other_file(path: Path) -> Path:
    path = path.with_name("notes.txt")
    path.write_text("notes")
    return path


BAD_FILES = {
    "truncated png": truncated_png,
    "text named .png": _bad_text_png,
    "text file": _bad_other_file,
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_is_an_error_naming_it(mvtec_dir, kind):
    bad = BAD_FILES[kind](mvtec_dir / "test" / "crack" / "bad.png")
    with pytest.raises(DataError) as info:
        load_mvtec(mvtec_dir)
    message = str(info.value)
    assert str(bad) in message and "skip_bad_images" in message


def test_skip_bad_images_skips_and_lists_them(mvtec_dir):
    bad = [
        truncated_png(mvtec_dir / "train" / "good" / "truncated.png"),
        _bad_text_png(mvtec_dir / "test" / "crack" / "text.png"),
        _bad_other_file(mvtec_dir / "test" / "scratch" / "x.png"),
    ]
    data = load_mvtec(mvtec_dir, skip_bad_images=True)
    assert sorted(data.skipped_files) == sorted(str(p) for p in bad)
    assert data.train_images.shape == (8, 1, 16, 16) and data.test_images.shape == (7, 1, 16, 16)
    assert data.test_labels.tolist() == [0] * 3 + [1] * 2 + [2] * 2


def test_empty_directory_is_an_error(mvtec_dir):
    (mvtec_dir / "test" / "hole").mkdir()
    with pytest.raises(DataError, match="hole: the folder holds no images"):
        load_mvtec(mvtec_dir)


def test_folder_of_only_bad_files_is_an_error_even_when_skipping(tmp_path):
    fill(tmp_path / "normal", 3)
    (tmp_path / "anomaly").mkdir()
    _bad_text_png(tmp_path / "anomaly" / "a.png")
    with pytest.raises(DataError, match="none of its 1 files is a readable image"):
        load_normal_anomaly(tmp_path, skip_bad_images=True)


@pytest.mark.parametrize(
    ("remove", "message"),
    [("train/good", "train/good: no such folder"), ("test/crack", "no defect folder")],
)
def test_missing_folders_explain_the_layout(mvtec_dir, remove, message):
    import shutil

    shutil.rmtree(mvtec_dir / remove)
    if remove == "test/crack":
        shutil.rmtree(mvtec_dir / "test" / "scratch")
    with pytest.raises(DataError, match=message) as info:
        load_mvtec(mvtec_dir)
    assert "MVTec AD's layout" in str(info.value)


def test_registered_in_load_dataset(mvtec_dir, tmp_path, idx_dir):
    data = load_dataset("mvtec", mvtec_dir, image_size=8)
    assert data.train_images.shape == (8, 1, 8, 8) and data.name == "mvtec"
    fill(tmp_path / "simple" / "normal", 5)
    fill(tmp_path / "simple" / "anomaly", 2, fmt="JPEG")
    assert load_dataset("folder", tmp_path / "simple").n_classes == 2
    with pytest.raises(DataError, match="pass --data-dir"):
        load_dataset("mvtec")
    with pytest.raises(ConfigError, match="image_size applies to the image-folder datasets"):
        load_dataset("idx", idx_dir, image_size=8)


def test_expand_and_stream_image_files(mvtec_dir, tmp_path):
    test_dir = mvtec_dir / "test"
    found = list(expand_image_paths([test_dir]))  # recursive, sorted, masks included as files
    assert found[0] == test_dir / "crack" / "000.tif" and len(found) == 8
    pattern = str(mvtec_dir / "train" / "*" / "*.png")
    assert len(list(expand_image_paths([pattern]))) == 6
    single = mvtec_dir / "train" / "crack" / "000.bmp"
    assert list(expand_image_paths([single])) == [single]
    with pytest.raises(DataError, match="no such file or directory"):
        list(expand_image_paths([tmp_path / "missing.png"]))
    with pytest.raises(DataError, match="no file matches"):
        list(expand_image_paths([str(tmp_path / "*.nothing")]))

    batches = list(
        iter_image_batches(expand_image_paths([test_dir]), mode="RGB", image_size=10, batch_size=3)
    )
    assert [len(paths) for paths, _ in batches] == [3, 3, 2]
    assert all(images.shape[1:] == (3, 10, 10) for _, images in batches)
    assert batches[0][1].dtype == np.uint8


def test_streaming_skips_or_raises_on_bad_files(tmp_path):
    good = fill(tmp_path, 2)
    bad = _bad_text_png(tmp_path / "zz.png")
    with pytest.raises(BadImageError, match=r"zz\.png"):
        list(iter_image_batches([*good, bad], mode="L", image_size=16, batch_size=8))
    skipped: list[Path] = []
    batches = list(
        iter_image_batches([bad, *good], mode="L", image_size=16, batch_size=8, skipped=skipped)
    )
    assert skipped == [bad] and batches[0][0] == good


def test_cli_trains_on_mvtec_folders(tmp_path, capsys):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    # stripes of class 0 are normal, other classes' stripes are the defects
    layout = {"train": {"good": 40, "crack": 4}, "test": {"good": 8, "crack": 4, "cut": 4}}
    for split, counts in layout.items():
        for folder, n in counts.items():
            labels = np.zeros(n, int) if folder == "good" else rng.integers(1, 10, n)
            for i, image in enumerate(synthetic_images(labels, seed=int(rng.integers(100)))):
                save_image(root / split / folder / f"{i}.png", Image.fromarray(image))
    _bad_text_png(root / "test" / "cut" / "broken.png")
    out = tmp_path / "runs"
    code = main(
        [
            "train",
            "--dataset",
            "mvtec",
            "--data-dir",
            str(root),
            "--n-epochs",
            "1",
            "--batch-size",
            "16",
            "--no-progress-bar",
            "--accelerator",
            "cpu",
            "--set",
            "data.skip_bad_images=true",
            "--set",
            "data.image_size=12",
            "--output-dir",
            str(out),
            "--name",
            "mine",
        ]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    # every labelled training defect is used by default (4 of 40 + 4 = gamma_l 0.1 ...)
    assert "the default for image folders" in printed.out
    run_dir = out / "autoencoder" / "mvtec" / "class0" / "mine"
    skipped = (run_dir / "skipped_images.txt").read_text()
    assert skipped == f"{root / 'test' / 'cut' / 'broken.png'}\n"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["class_names"] == ["good", "crack", "cut"] and run["status"] == "finished"
    assert run["split"]["test_normal"] == 8 and run["split"]["test_anomalies"] == 8
    # ... less the validation share
    assert run["split"]["train_labelled_anomalies"] + run["split"]["val_labelled_anomalies"] == 4
    assert f"gamma_l = {run['split']['anomaly_ratio']:g}" in printed.out
    assert (run_dir / "plots" / "reconstructions.png").is_file()
    assert main(["evaluate", str(run_dir), "--accelerator", "cpu"]) == 0
