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
    # a ground_truth/ folder inside test/ is not a defect class (masks: see the mask tests)
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


# ------------------------------------------------------------------------------------ masks
def save_mask(path: Path, box: tuple[int, int, int, int], size=(16, 16), mode="L") -> Path:
    """A mask with the rectangle ``box`` = (top, bottom, left, right) set to 255 (1 for 16-bit)."""
    on = 1 if mode == "I;16" else 255
    pixels = np.zeros(size[::-1], dtype=np.uint16 if mode == "I;16" else np.uint8)
    top, bottom, left, right = box
    pixels[top:bottom, left:right] = on
    image = Image.fromarray(pixels)
    if mode not in ("L", "I;16"):
        image = image.convert(mode)
    return save_image(path, image, "TIFF" if path.suffix == ".tif" else "PNG")


def box_array(box: tuple[int, int, int, int], side: int = 16) -> np.ndarray:
    out = np.zeros((side, side), dtype=np.uint8)
    top, bottom, left, right = box
    out[top:bottom, left:right] = 1
    return out


#: test defect image -> its mask's box; boxes differ, so rows can be matched to images
TEST_BOXES = {
    ("crack", "000"): (0, 4, 0, 4),
    ("crack", "001"): (4, 8, 4, 12),
    ("scratch", "000"): (8, 16, 0, 2),
    ("scratch", "001"): (2, 3, 2, 14),
}
TRAIN_BOXES = {("crack", "000"): (12, 16, 12, 16), ("crack", "001"): (0, 16, 8, 9)}


@pytest.fixture
def masked_mvtec(mvtec_dir) -> Path:
    gt = mvtec_dir / "ground_truth"
    for (defect, stem), box in TEST_BOXES.items():
        save_mask(gt / defect / f"{stem}_mask.png", box)
    for (defect, stem), box in TRAIN_BOXES.items():
        save_mask(gt / "train" / defect / f"{stem}_mask.png", box)
    return mvtec_dir


def test_mvtec_masks_are_read_and_aligned(masked_mvtec):
    data = load_mvtec(masked_mvtec)
    assert data.test_masks is not None and data.train_masks is not None
    assert data.test_masks.shape == (7, 16, 16) and data.test_masks.dtype == np.uint8
    assert data.train_masks.shape == (8, 16, 16) and data.train_masks.dtype == np.uint8
    # test rows: good x3 (all zero), crack 000, 001, scratch 000, 001
    assert not data.test_masks[:3].any()
    for row, key in enumerate(TEST_BOXES, start=3):
        np.testing.assert_array_equal(data.test_masks[row], box_array(TEST_BOXES[key]))
    assert not data.train_masks[:6].any()
    for row, key in enumerate(TRAIN_BOXES, start=6):
        np.testing.assert_array_equal(data.train_masks[row], box_array(TRAIN_BOXES[key]))


def test_masks_are_resized_nearest_and_stay_binary(masked_mvtec):
    data = load_mvtec(masked_mvtec, image_size=8)
    assert data.test_masks is not None and data.test_masks.shape == (7, 8, 8)
    assert set(np.unique(data.test_masks).tolist()) == {0, 1}
    np.testing.assert_array_equal(data.test_masks[4], box_array((2, 4, 2, 6), side=8))


def test_mask_formats_and_modes(masked_mvtec):
    """Any image format named <stem>_mask; RGB converted to grey; a 16-bit 1 is a defect."""
    gt = masked_mvtec / "ground_truth"
    (gt / "crack" / "000_mask.png").unlink()
    (gt / "scratch" / "001_mask.png").unlink()
    save_mask(gt / "crack" / "000_mask.tif", TEST_BOXES["crack", "000"], mode="I;16")
    save_mask(gt / "scratch" / "001_mask.png", TEST_BOXES["scratch", "001"], mode="RGB")
    (gt / "crack" / ".000_mask.png").write_text("hidden files are never masks")
    data = load_mvtec(masked_mvtec)
    assert data.test_masks is not None
    np.testing.assert_array_equal(data.test_masks[3], box_array(TEST_BOXES["crack", "000"]))
    np.testing.assert_array_equal(data.test_masks[6], box_array(TEST_BOXES["scratch", "001"]))
    save_mask(gt / "crack" / "000_mask.png", (0, 1, 0, 1))
    with pytest.raises(DataError, match=r"two masks for .*000\.tif"):
        load_mvtec(masked_mvtec)


def test_missing_test_mask_names_the_file(masked_mvtec):
    expected = masked_mvtec / "ground_truth" / "scratch" / "001_mask.png"
    expected.unlink()
    with pytest.raises(DataError) as info:
        load_mvtec(masked_mvtec)
    message = str(info.value)
    assert str(expected) in message and "scratch/001.png" in message
    assert "masks='ignore'" in message
    # a whole defect type without masks is the same error
    import shutil

    shutil.rmtree(masked_mvtec / "ground_truth" / "scratch")
    with pytest.raises(DataError, match=r"scratch/000_mask\.png: no mask"):
        load_mvtec(masked_mvtec)


def test_mis_sized_mask_names_the_file_and_both_sizes(masked_mvtec):
    bad = save_mask(
        masked_mvtec / "ground_truth" / "crack" / "001_mask.png", (0, 2, 0, 2), (20, 16)
    )
    with pytest.raises(DataError) as info:
        load_mvtec(masked_mvtec)
    message = str(info.value)
    assert str(bad) in message and "20x16" in message and "16x16" in message


def test_unreadable_mask_is_an_error_even_when_skipping(masked_mvtec):
    bad = masked_mvtec / "ground_truth" / "crack" / "001_mask.png"
    bad.write_text("not an image")
    for skip in (False, True):
        with pytest.raises(DataError, match=rf"{bad}: this mask is not a readable"):
            load_mvtec(masked_mvtec, skip_bad_images=skip)


def test_a_skipped_image_needs_no_mask(masked_mvtec):
    truncated_png(masked_mvtec / "test" / "crack" / "002.png")  # no 002_mask: skipped with it
    data = load_mvtec(masked_mvtec, skip_bad_images=True)
    assert data.test_masks is not None and data.test_masks.shape == (7, 16, 16)
    assert len(data.skipped_files) == 1


def test_mask_modes(masked_mvtec):
    (masked_mvtec / "ground_truth" / "crack" / "001_mask.png").unlink()  # ignored: no error
    data = load_mvtec(masked_mvtec, masks="ignore")
    assert data.test_masks is None and data.train_masks is None
    import shutil

    shutil.rmtree(masked_mvtec / "ground_truth")
    data = load_mvtec(masked_mvtec)  # auto: no ground_truth/, no masks
    assert data.test_masks is None and data.train_masks is None
    with pytest.raises(DataError, match=r"ground_truth: no such folder; masks='required'"):
        load_mvtec(masked_mvtec, masks="required")
    with pytest.raises(ConfigError, match="masks must be one of auto, required, ignore"):
        load_mvtec(masked_mvtec, masks="yes")  # type: ignore[arg-type]


def test_training_defect_masks_beside_the_test_masks(masked_mvtec):
    """Without ground_truth/train/<defect>/, training masks come from ground_truth/<defect>/,
    all or nothing, and a name shared with a test image is ambiguous."""
    import shutil

    gt = masked_mvtec / "ground_truth"
    shutil.rmtree(gt / "train")
    with pytest.raises(DataError, match=r"could be the mask of the training image .*000\.bmp"):
        load_mvtec(masked_mvtec)  # train/crack/000.bmp and test/crack/000.tif share a name
    for stem in ("000", "001"):
        train_image = masked_mvtec / "train" / "crack" / f"{stem}.bmp"
        train_image.rename(train_image.with_name(f"1{stem}.bmp"))
    data = load_mvtec(masked_mvtec)  # no training defect has a mask: unknown, tests still read
    assert data.train_masks is None and data.test_masks is not None
    save_mask(gt / "crack" / "1000_mask.png", TRAIN_BOXES["crack", "000"])
    with pytest.raises(DataError, match=r"crack/1001_mask\.png: no mask .* every one needs one"):
        load_mvtec(masked_mvtec)
    save_mask(gt / "crack" / "1001_mask.png", TRAIN_BOXES["crack", "001"])
    data = load_mvtec(masked_mvtec)
    assert data.train_masks is not None
    np.testing.assert_array_equal(data.train_masks[7], box_array(TRAIN_BOXES["crack", "001"]))


def test_training_masks_are_zero_without_training_defects(masked_mvtec):
    import shutil

    shutil.rmtree(masked_mvtec / "train" / "crack")
    data = load_mvtec(masked_mvtec)
    assert data.train_masks is not None and data.train_masks.shape == (6, 16, 16)
    assert not data.train_masks.any()


def test_a_defect_named_train_is_refused_while_reading_masks(masked_mvtec):
    fill(masked_mvtec / "test" / "train", 1)
    with pytest.raises(DataError, match="defect type named 'train'"):
        load_mvtec(masked_mvtec)
    assert load_mvtec(masked_mvtec, masks="ignore").n_classes == 4


def test_normal_anomaly_masks_follow_the_split(tmp_path):
    fill(tmp_path / "normal", 6)
    anomalies = fill(tmp_path / "anomaly", 6, start=100)
    for i, image in enumerate(anomalies):  # anomaly i (grey level 100 + i): column i is on
        save_mask(tmp_path / "masks" / f"{image.stem}_mask.png", (0, 16, i, i + 1))
    data = load_normal_anomaly(tmp_path)
    assert data.train_masks is not None and data.test_masks is not None
    for images, labels, masks in (
        (data.train_images, data.train_labels, data.train_masks),
        (data.test_images, data.test_labels, data.test_masks),
    ):
        assert masks.shape == (len(images), 16, 16)
        assert not masks[labels == 0].any()
        for image, mask in zip(images[labels == 1], masks[labels == 1], strict=True):
            column = int(image[0, 0, 0]) - 100
            np.testing.assert_array_equal(mask, box_array((0, 16, column, column + 1)))
    assert int(data.test_labels.sum()) >= 1 and int(data.train_labels.sum()) >= 1
    (tmp_path / "masks" / "003_mask.png").unlink()
    with pytest.raises(DataError, match=r"masks/003_mask\.png: no mask for the defect image"):
        load_normal_anomaly(tmp_path)
    assert load_normal_anomaly(tmp_path, masks="ignore").test_masks is None


def test_load_dataset_passes_masks(masked_mvtec, idx_dir):
    assert load_dataset("mvtec", masked_mvtec).test_masks is not None
    assert load_dataset("mvtec", masked_mvtec, masks="ignore").test_masks is None
    assert load_dataset("idx", idx_dir).test_masks is None
    with pytest.raises(ConfigError, match="idx has no ground-truth masks"):
        load_dataset("idx", idx_dir, masks="required")


def test_masks_follow_the_exif_orientation_of_their_image(tmp_path):
    """A photo stored 20x16 but turned by EXIF is 16x20 as shown, and so must its mask be."""
    fill(tmp_path / "normal", 3)
    turned = Image.new("L", (20, 16), 200)
    exif = turned.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees
    (tmp_path / "anomaly").mkdir()
    turned.save(tmp_path / "anomaly" / "photo.jpg", format="JPEG", exif=exif)
    save_mask(tmp_path / "masks" / "photo_mask.png", (0, 20, 0, 4), size=(16, 20))
    data = load_normal_anomaly(tmp_path, image_size=16, anomaly_test_fraction=1.0)
    assert data.test_masks is not None and data.test_masks[data.test_labels == 1].any()
    save_mask(tmp_path / "masks" / "photo_mask.png", (0, 16, 0, 4), size=(20, 16))
    with pytest.raises(DataError, match=r"the mask is 20x16 pixels but its image .* is 16x20"):
        load_normal_anomaly(tmp_path, image_size=16, anomaly_test_fraction=1.0)
