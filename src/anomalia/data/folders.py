"""Your own images: folder datasets (MVTec AD's layout and a plain normal/anomaly layout) and
streaming of image files for scoring.

Two layouts are read into the same :class:`~anomalia.data.datasets.ImageData` container as the
IDX datasets, with class 0 the normal class, so the experiment protocol runs unchanged with
``normal_class=0``:

- **MVTec AD** (``mvtec``)::

      <root>/train/good/           normal training images            -> class 0 "good"
      <root>/train/<defect>/       labelled training anomalies, optional
      <root>/test/good/            normal test images                 -> class 0
      <root>/test/<defect>/        anomalous test images, one class per defect type

  A ``ground_truth/`` folder (MVTec's masks) is ignored wherever it sits. Defect classes are
  numbered 1, 2, ... in the sorted order of their folder names, over train and test together.

- **normal/anomaly** (``folder``)::

      <root>/normal/               class 0 "normal"
      <root>/anomaly/              class 1 "anomaly"

  Split by a seeded rule that depends on the file names only (never on the training seed):
  ``test_fraction`` (default 0.2) of the normal images and ``anomaly_test_fraction`` (default
  0.5) of the anomalies form the test set, each at least one image; the remaining anomalies are
  the training pool from which the protocol draws its labelled anomalies (``anomaly_ratio``).

Files are read with Pillow (PNG, JPEG, BMP and TIFF, recognised by their content). Every
non-hidden file in a class folder must be such an image: anything else is a
:class:`~anomalia.errors.DataError` naming the file, or, with ``skip_bad_images=True``, left
out and listed in ``ImageData.skipped_files``. Channels follow the data: every image is
converted to the majority kind, grayscale ``"L"`` or colour ``"RGB"`` (palette, alpha, CMYK and
the like count as colour; a tie is colour). Images are resized to a square ``image_size``
(non-square images are stretched: crop them first if the aspect ratio matters); by default the
size is kept when every image has the same square size, else 64. Set ``image_size`` for large
photos (MVTec AD's are 700-1024 pixels wide).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from anomalia.data.datasets import ImageData
from anomalia.errors import ConfigError, DataError

#: Pillow formats anomalia reads; others are refused even when Pillow could open them.
SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF")
#: File-name endings searched for when a directory is given for scoring.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
DEFAULT_IMAGE_SIZE = 64
NORMAL_FOLDER = "good"
MASK_FOLDER = "ground_truth"
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


class BadImageError(DataError):
    """One file is not a readable PNG, JPEG, BMP or TIFF image."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(
            f"{path}: not a readable PNG, JPEG, BMP or TIFF image ({reason}); replace or remove "
            "it, or leave such files out with skip_bad_images (anomalia train: --set "
            "data.skip_bad_images=true; anomalia predict: --skip-bad-images)"
        )
        self.path = path


# ------------------------------------------------------------------------------ single images
def probe_image(path: str | Path) -> tuple[tuple[int, int], str]:
    """(width, height) and Pillow mode of an image, from its header (pixels are not decoded).

    Raises:
        BadImageError: the file cannot be opened as a supported image.
    """
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path, formats=SUPPORTED_FORMATS) as image:
            return (int(image.width), int(image.height)), str(image.mode)
    except Exception as err:  # Pillow raises many types for broken files
        raise BadImageError(path, _reason(err)) from err


def channels_mode(modes: Iterable[str]) -> str:
    """``"L"`` when most images are grayscale, else ``"RGB"`` (ties and colour kinds: RGB)."""
    n_gray = n_colour = 0
    for mode in modes:
        if mode in _GRAY_MODES:
            n_gray += 1
        else:
            n_colour += 1
    return "L" if n_gray > n_colour else "RGB"


def load_image(path: str | Path, mode: str, image_size: int) -> np.ndarray:
    """Decode one image as uint8 (C, image_size, image_size) with C = 1 (``"L"``) or 3 (``"RGB"``).

    EXIF orientation is applied; 16-bit and float images are scaled to 8 bits; the image is then
    converted to ``mode`` and resized (bilinear, antialiased when shrinking).

    Raises:
        BadImageError: the file cannot be decoded (truncated, corrupt, not a supported image).
    """
    from PIL import Image, ImageOps

    path = Path(path)
    try:
        with Image.open(path, formats=SUPPORTED_FORMATS) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened) or opened
            image = _to_8bit(image).convert(mode)
            if image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except Exception as err:  # Pillow raises many types for broken files
        raise BadImageError(path, _reason(err)) from err
    if pixels.ndim == 2:  # (H, W) -> (1, H, W)
        return pixels[None].copy()
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # (H, W, C) -> (C, H, W)


def _to_8bit(image: Any) -> Any:
    """16-bit and 32-bit integer images scaled to 0-255 by 65535, float ones by 1 (if at most 1)
    or clipped; every other mode is returned as it is."""
    from PIL import Image

    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F" and values.size and values.max() <= 1.0:
        values = values * 255.0
    elif image.mode != "F":
        values = values * (255.0 / 65535.0)
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))  # 2-d: "L"


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    if "cannot identify image file" in text:
        return "unknown format or not an image"
    return text


def _check_image_size(image_size: int | None) -> None:
    if image_size is not None and (isinstance(image_size, bool) or image_size < 1):
        raise ConfigError(f"image_size must be a positive number of pixels, got {image_size}")


# ----------------------------------------------------------------------- streaming for scoring
def expand_image_paths(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Image files named by ``paths``: files as given, directories searched recursively for
    names ending in .png, .jpg, .jpeg, .bmp, .tif or .tiff (any case), glob patterns expanded.

    Paths are produced lazily and in a stable order (sorted within each directory and pattern),
    so any number of files can be streamed; hidden files and folders are left out of searches.

    Raises:
        DataError: a path is neither a file, a directory nor a pattern matching something.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from _walk_images(path)
        elif path.is_file():
            yield path
        elif glob.has_magic(str(raw)):
            matches = sorted(glob.iglob(str(raw), recursive=True))
            if not matches:
                raise DataError(f"{raw}: no file matches this pattern")
            for match in matches:
                found = Path(match)
                if found.is_dir():
                    yield from _walk_images(found)
                elif found.is_file():
                    yield found
        else:
            raise DataError(f"{raw}: no such file or directory")


def _walk_images(directory: Path) -> Iterator[Path]:
    for parent, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(parent) / name


def iter_image_batches(
    paths: Iterable[str | Path],
    *,
    mode: str,
    image_size: int,
    batch_size: int,
    skipped: list[Path] | None = None,
) -> Iterator[tuple[list[Path], np.ndarray]]:
    """Read image files in batches: (their paths, uint8 array (B, C, image_size, image_size)).

    Only one batch is held in memory at a time, whatever the number of files.

    Args:
        paths: image files (e.g. from :func:`expand_image_paths`); may be a lazy iterator.
        mode: ``"L"`` (1 channel) or ``"RGB"`` (3 channels).
        image_size: side every image is resized to.
        batch_size: images per batch.
        skipped: if given, unreadable files are appended to it and left out; else they raise.

    Raises:
        BadImageError: a file cannot be read and ``skipped`` is None.
    """
    if mode not in ("L", "RGB"):
        raise ConfigError(f"mode must be 'L' or 'RGB', got {mode!r}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    _check_image_size(image_size)
    batch_paths: list[Path] = []
    batch_images: list[np.ndarray] = []
    for raw in paths:
        path = Path(raw)
        try:
            batch_images.append(load_image(path, mode, image_size))
        except BadImageError:
            if skipped is None:
                raise
            skipped.append(path)
            continue
        batch_paths.append(path)
        if len(batch_paths) == batch_size:
            yield batch_paths, np.stack(batch_images)
            batch_paths, batch_images = [], []
    if batch_paths:
        yield batch_paths, np.stack(batch_images)


# --------------------------------------------------------------------------- folder datasets
def _class_files(directory: Path) -> list[Path]:
    """Every non-hidden file directly in ``directory`` (sorted), which must all be images."""
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory")
    files: list[Path] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            if path.name == MASK_FOLDER:
                continue
            raise DataError(
                f"{path}: unexpected folder inside the class folder {directory}; a class folder "
                "holds image files only"
            )
        files.append(path)
    return files


_Probe = tuple[Path, tuple[int, int], str]  # (file, (width, height), Pillow mode)


def _read_dataset_images(
    groups: Sequence[tuple[Path, list[Path]]],
    image_size: int | None,
    skipped: list[Path] | None,
) -> tuple[list[list[Path]], np.ndarray]:
    """Probe every file, choose channels and size, then decode into one preallocated array.

    Channels and size are chosen from the files that decode: when skipping finds a file that
    opened but does not decode (a truncated one), the choice is made again without it.

    Returns:
        (the files kept per group, uint8 images (N, C, S, S) of the kept files in group order).
    """
    _check_image_size(image_size)
    probed: list[list[_Probe]] = []
    for directory, files in groups:
        probes: list[_Probe] = []
        for path in files:
            try:
                probes.append((path, *probe_image(path)))
            except BadImageError:
                if skipped is None:
                    raise
                skipped.append(path)
        if not probes:
            _empty(directory, files)
        probed.append(probes)
    while True:
        mode, size = _choose_format([p for probes in probed for p in probes], image_size)
        n_images = sum(len(probes) for probes in probed)
        images = np.empty((n_images, 1 if mode == "L" else 3, size, size), dtype=np.uint8)
        failed: set[Path] = set()
        row = 0
        for probes in probed:
            for path, _, _ in probes:
                try:
                    images[row] = load_image(path, mode, size)
                except BadImageError:
                    if skipped is None:
                        raise
                    skipped.append(path)
                    failed.add(path)
                    continue
                row += 1
        probed = [[p for p in probes if p[0] not in failed] for probes in probed]
        for (directory, files), probes in zip(groups, probed, strict=True):
            if not probes:
                _empty(directory, files)
        remaining = [p for probes in probed for p in probes]
        if not failed or _choose_format(remaining, image_size) == (mode, size):
            return [[p[0] for p in probes] for probes in probed], images[:row]


def _choose_format(probes: list[_Probe], image_size: int | None) -> tuple[str, int]:
    """(``"L"`` or ``"RGB"``, side): the majority kind, and the one square size all images
    share (else :data:`DEFAULT_IMAGE_SIZE`) unless ``image_size`` is given."""
    mode = channels_mode(m for _, _, m in probes)
    if image_size is not None:
        return mode, image_size
    sizes = {size for _, size, _ in probes}
    (width, height), *others = sorted(sizes)
    return mode, width if width == height and not others else DEFAULT_IMAGE_SIZE


def _empty(directory: Path, files: list[Path]) -> NoReturn:
    if files:
        raise DataError(
            f"{directory}: none of its {len(files)} files is a readable image; "
            "add PNG, JPEG, BMP or TIFF images"
        )
    raise DataError(f"{directory}: the folder holds no images; add images or remove the folder")


def _subfolders(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name != MASK_FOLDER
    )


def load_mvtec(
    root: str | Path, *, image_size: int | None = None, skip_bad_images: bool = False
) -> ImageData:
    """Read a dataset in MVTec AD's layout (one object category; see the module docstring).

    Args:
        root: the category folder, holding ``train/`` and ``test/``.
        image_size: side of the square images returned (default: kept when every image has the
            same square size, else 64).
        skip_bad_images: leave unreadable files out (listed in ``skipped_files``) instead of
            raising.

    Raises:
        DataError: a folder is missing or empty, or a file is not a readable image.
    """
    root = Path(root)
    layout = (
        f"expected {root}/train/good/, {root}/test/good/ and {root}/test/<defect_type>/ "
        "(MVTec AD's layout)"
    )
    for needed in ("train/good", "test/good"):
        if not (root / needed).is_dir():
            raise DataError(f"{root / needed}: no such folder; {layout}")
    train_defects = [p for p in _subfolders(root / "train") if p.name != NORMAL_FOLDER]
    test_defects = [p for p in _subfolders(root / "test") if p.name != NORMAL_FOLDER]
    if not test_defects:
        raise DataError(f"{root / 'test'}: no defect folder besides good/; {layout}")
    class_names = (NORMAL_FOLDER, *sorted({p.name for p in train_defects + test_defects}))
    label_of = {name: i for i, name in enumerate(class_names)}
    skipped: list[Path] | None = [] if skip_bad_images else None
    train_dirs = [root / "train" / NORMAL_FOLDER, *train_defects]
    test_dirs = [root / "test" / NORMAL_FOLDER, *test_defects]
    dirs = train_dirs + test_dirs
    groups = [(d, _class_files(d)) for d in dirs]
    kept, images = _read_dataset_images(groups, image_size, skipped)
    labels = np.concatenate(
        [
            np.full(len(files), label_of[d.name], dtype=np.int64)
            for d, files in zip(dirs, kept, strict=True)
        ]
    )
    n_train = sum(len(files) for files in kept[: len(train_dirs)])
    return ImageData(
        name="mvtec",
        train_images=images[:n_train],
        train_labels=labels[:n_train],
        test_images=images[n_train:],
        test_labels=labels[n_train:],
        class_names=class_names,
        source=str(root),
        skipped_files=[str(p) for p in skipped or []],
    )


def load_normal_anomaly(
    root: str | Path,
    *,
    image_size: int | None = None,
    skip_bad_images: bool = False,
    test_fraction: float = 0.2,
    anomaly_test_fraction: float = 0.5,
    seed: int = 0,
) -> ImageData:
    """Read ``<root>/normal/`` and ``<root>/anomaly/`` and split them into train and test.

    Args:
        root: the folder holding ``normal/`` and ``anomaly/``.
        image_size: as for :func:`load_mvtec`.
        skip_bad_images: as for :func:`load_mvtec`.
        test_fraction: share of the normal images in the test set, in (0, 1).
        anomaly_test_fraction: share of the anomalies in the test set, in (0, 1]; the others
            form the pool labelled training anomalies are drawn from.
        seed: seeds the split (a fixed default, so every run sees the same test set).

    Raises:
        DataError: a folder is missing or empty, or a file is not a readable image.
        ConfigError: a fraction is out of range.
    """
    if not 0 < test_fraction < 1:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if not 0 < anomaly_test_fraction <= 1:
        raise ConfigError(f"anomaly_test_fraction must be in (0, 1], got {anomaly_test_fraction}")
    root = Path(root)
    class_names = ("normal", "anomaly")
    for name in class_names:
        if not (root / name).is_dir():
            raise DataError(
                f"{root / name}: no such folder; expected {root}/normal/ and {root}/anomaly/"
            )
    skipped: list[Path] | None = [] if skip_bad_images else None
    groups = [(root / name, _class_files(root / name)) for name in class_names]
    (normal_files, anomaly_files), images = _read_dataset_images(groups, image_size, skipped)
    if len(normal_files) < 2:
        raise DataError(
            f"{root / 'normal'}: needs at least 2 readable images (one to train, one to test)"
        )
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label, offset, n, fraction in (
        (0, 0, len(normal_files), test_fraction),
        (1, len(normal_files), len(anomaly_files), anomaly_test_fraction),
    ):
        n_test = min(n, max(1, round(fraction * n)))
        order = offset + rng.permutation(n)  # rows in ``images``; files are in sorted order
        test_parts.append((np.sort(order[:n_test]), label))
        train_parts.append((np.sort(order[n_test:]), label))

    def _take(parts: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
        rows = np.concatenate([r for r, _ in parts])
        labels = np.concatenate([np.full(len(r), label, dtype=np.int64) for r, label in parts])
        return images[rows], labels

    train_images, train_labels = _take(train_parts)
    test_images, test_labels = _take(test_parts)
    return ImageData(
        name="folder",
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        class_names=class_names,
        source=str(root),
        skipped_files=[str(p) for p in skipped or []],
    )
