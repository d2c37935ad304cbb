"""Your own images as datasets: MVTec AD's layout and a plain normal/anomaly layout.

Two layouts are read into the same :class:`~anomalia.data.types.ImageData` container as the
IDX datasets, with class 0 the normal class, so the experiment protocol runs unchanged with
``normal_class=0``:

- **MVTec AD** (``mvtec``)::

      <root>/train/good/           normal training images            -> class 0 "good"
      <root>/train/<defect>/       labelled training anomalies, optional
      <root>/test/good/            normal test images                 -> class 0
      <root>/test/<defect>/        anomalous test images, one class per defect type

      <root>/ground_truth/<defect>/          masks of the test defects, optional
      <root>/ground_truth/train/<defect>/    masks of the labelled training defects, optional

  Defect classes are numbered 1, 2, ... in the sorted order of their folder names, over train
  and test together. A ``ground_truth/`` folder is never read as a class, wherever it sits.

- **normal/anomaly** (``folder``)::

      <root>/normal/               class 0 "normal"
      <root>/anomaly/              class 1 "anomaly"

  Split by a rule that depends on each file's name only (never on the training seed, nor on
  the other files): a file is a test image when the SHA-256 of its name, read as a number in
  [0, 1), is below ``test_fraction`` (default 0.2) for the normal images or
  ``anomaly_test_fraction`` (default 0.5) for the anomalies. Adding, removing or skipping a
  file therefore never moves another one, except in folders too small for the rule to give
  each side an image: each class keeps at least one test image, and at least one training
  image when it has two or more and its fraction is below 1 (see :func:`split_by_name`). The
  training anomalies are the pool from which the protocol draws its labelled anomalies
  (``anomaly_ratio``). Masks, optional, are in ``<root>/masks/``.

**Masks** (ground truth of where the defect is, :attr:`ImageData.test_masks` and
``train_masks``): the mask of an image ``<name>.<ext>`` is the file ``<name>_mask.<any ext>``
(MVTec AD's naming; PNG, JPEG, BMP or TIFF) in the image's mask folder; a pixel above 0 is a
defect pixel (see :func:`~anomalia.data.image_files.load_mask`). A mask must have its image's
size (as shown, after EXIF orientation); it is resized to the images' side with
nearest-neighbour resampling. Normal images (``good/``, ``normal/``) have all-zero masks and no
files. The ``masks`` argument decides when masks are read:

- ``"auto"`` (default): when the mask folder exists (``ground_truth/``, or ``masks/`` for the
  normal/anomaly layout); then every test defect image must have a mask (for the normal/anomaly
  layout every image of ``anomaly/``, whichever side its name puts it on);
- ``"required"``: as ``"auto"``, and a missing mask folder is an error;
- ``"ignore"``: never; both mask arrays are ``None``.

Labelled training defects of the MVTec layout (``train/<defect>/``) take their masks from
``ground_truth/train/<defect>/`` when that folder exists, else from ``ground_truth/<defect>/``,
beside the test masks; there a mask whose name fits both a training and a test image of that
defect is an error (move the training masks to ``ground_truth/train/<defect>/``). Their masks
are all or nothing: when none of them has one, ``train_masks`` is ``None`` (unknown) while the
test masks are still read; when some have one, every one must. A defect folder named ``train``
cannot be told apart from ``ground_truth/train/`` and is an error while masks are read. An image
left out by ``skip_bad_images`` is left out with its mask (never looked for); a mask that cannot
be read is an error, whatever ``skip_bad_images`` says, because ground truth must not go
missing silently.

Files are read with Pillow (PNG, JPEG, BMP and TIFF, recognised by their content; see
:mod:`anomalia.data.image_files`). Every non-hidden file in a class folder must be such an
image: anything else is a :class:`~anomalia.errors.DataError` naming the file, or, with
``skip_bad_images=True``, left out and listed in ``ImageData.skipped_files``. Channels follow
the data: every image is converted to the majority kind, grayscale ``"L"`` or colour ``"RGB"``
(palette, alpha, CMYK and the like count as colour; a tie is colour). Images are resized to a
square ``image_size`` (non-square images are stretched: crop them first if the aspect ratio
matters); by default the size is kept when every image has the same square size, else 64. Set
``image_size`` for large photos (MVTec AD's are 700-1024 pixels wide).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NoReturn

import numpy as np

from anomalia.data.image_files import (
    BadImageError,
    channels_mode,
    check_image_size,
    load_image,
    load_mask,
    probe_image,
)
from anomalia.data.types import ImageData
from anomalia.errors import ConfigError, DataError

DEFAULT_IMAGE_SIZE = 64
NORMAL_FOLDER = "good"
MASK_FOLDER = "ground_truth"
#: Sub-folder of ``ground_truth/`` holding the masks of labelled training defects.
TRAIN_MASK_FOLDER = "train"
#: The normal/anomaly layout's mask folder, beside ``normal/`` and ``anomaly/``.
FOLDER_LAYOUT_MASKS = "masks"
#: A mask is named after its image's stem with this ending, in any image format.
MASK_SUFFIX = "_mask"
MaskMode = Literal["auto", "required", "ignore"]
MASK_MODES: tuple[MaskMode, ...] = ("auto", "required", "ignore")


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
) -> tuple[list[list[_Probe]], np.ndarray]:
    """Probe every file, choose channels and size, then decode into one preallocated array.

    Channels and size are chosen from the files that decode: when skipping finds a file that
    opened but does not decode (a truncated one), the choice is made again without it.

    Returns:
        (the kept files per group as (file, original (width, height), mode), uint8 images
        (N, C, S, S) of the kept files in group order).
    """
    check_image_size(image_size)
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
            return probed, images[:row]


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


def _check_masks_mode(masks: str) -> None:
    if masks not in MASK_MODES:
        raise ConfigError(f"masks must be one of {', '.join(MASK_MODES)}, got {masks!r}")


def _reads_masks(masks: MaskMode, folder: Path, needed_for: str) -> bool:
    """Whether masks are read: ``masks`` and the existence of the mask ``folder``."""
    _check_masks_mode(masks)
    if masks == "required" and not folder.is_dir():
        raise DataError(
            f"{folder}: no such folder; masks='required' needs {needed_for}; add the masks, or "
            "read none (masks='auto' or 'ignore')"
        )
    return masks != "ignore" and folder.is_dir()


class _MaskFinder:
    """Finds the mask ``<stem>_mask.<any ext>`` of an image in a folder, listing it once."""

    def __init__(self) -> None:
        self._listings: dict[Path, dict[str, list[Path]]] = {}

    def find(self, folder: Path, image: Path) -> Path | None:
        listing = self._listings.get(folder)
        if listing is None:
            listing = {}
            if folder.is_dir():
                for path in sorted(folder.iterdir()):
                    if path.is_file() and not path.name.startswith("."):
                        listing.setdefault(path.stem, []).append(path)
            self._listings[folder] = listing
        matches = listing.get(image.stem + MASK_SUFFIX, [])
        if len(matches) > 1:
            raise DataError(
                f"{matches[0]} and {matches[1]}: two masks for {image}; keep one of them"
            )
        return matches[0] if matches else None

    def require(self, folder: Path, image: Path) -> Path:
        found = self.find(folder, image)
        if found is None:
            raise _missing_mask(folder, image)
        return found


def _missing_mask(folder: Path, image: Path) -> DataError:
    return DataError(
        f"{folder / (image.stem + MASK_SUFFIX)}.png: no mask for the defect image {image}; add "
        f"it (named {image.stem}{MASK_SUFFIX} in any image format, the size of its image, defect "
        "pixels above 0), or read no masks (masks='ignore')"
    )


def _read_masks(images: list[_Probe], masks: list[Path | None], side: int) -> np.ndarray:
    """uint8 (N, side, side) in {0, 1}: the mask of each image, zeros where it has none."""
    out = np.zeros((len(images), side, side), dtype=np.uint8)
    for row, ((image, (width, height), _), mask) in enumerate(zip(images, masks, strict=True)):
        if mask is None:
            continue
        pixels, (mask_width, mask_height) = load_mask(mask, side)
        if (mask_width, mask_height) != (width, height):
            raise DataError(
                f"{mask}: the mask is {mask_width}x{mask_height} pixels but its image {image} is "
                f"{width}x{height}; a mask must have the size of its image (fix or replace the "
                "mask, or read no masks with masks='ignore')"
            )
        out[row] = pixels
    return out


def _mvtec_masks(
    gt: Path,
    groups: list[tuple[Path, list[Path]]],
    kept: list[list[_Probe]],
    *,
    n_train_dirs: int,
    side: int,
) -> tuple[np.ndarray | None, np.ndarray]:
    """(train masks or None, test masks) of an MVTec dataset whose class folders are
    ``groups`` (train/good, train defects, test/good, test defects), ``kept`` their images."""
    finder = _MaskFinder()
    # test/good/ first: no mask files; then every test defect image needs one
    test_dirs, test_kept = [d for d, _ in groups[n_train_dirs:]], kept[n_train_dirs:]
    test_sources: list[Path | None] = [None] * len(test_kept[0])
    for directory, probes in zip(test_dirs[1:], test_kept[1:], strict=True):
        test_sources += [finder.require(gt / directory.name, image) for image, _, _ in probes]
    test_masks = _read_masks([p for probes in test_kept for p in probes], test_sources, side)

    train_dirs, train_kept = [d for d, _ in groups[:n_train_dirs]], kept[:n_train_dirs]
    test_stems = {d.name: {path.stem for path in files} for d, files in groups[n_train_dirs + 1 :]}
    defect_sources = _mvtec_train_masks(gt, train_dirs[1:], train_kept[1:], test_stems, finder)
    if defect_sources is None and len(train_dirs) > 1:
        return None, test_masks  # labelled training defects without masks: unknown
    train_sources: list[Path | None] = [None] * len(train_kept[0])
    train_sources += defect_sources or []
    train_masks = _read_masks([p for probes in train_kept for p in probes], train_sources, side)
    return train_masks, test_masks


def _mvtec_train_masks(
    gt: Path,
    defect_dirs: list[Path],
    kept: list[list[_Probe]],
    test_images: dict[str, set[str]],
    finder: _MaskFinder,
) -> list[Path | None] | None:
    """The mask of every kept labelled training defect (see the module docstring), or None
    when none of them has one."""
    found: list[tuple[Path, Path, Path | None]] = []  # (mask folder, image, mask)
    for directory, probes in zip(defect_dirs, kept, strict=True):
        folder = gt / TRAIN_MASK_FOLDER / directory.name
        shared = not folder.is_dir()
        if shared:
            folder = gt / directory.name
        for image, _, _ in probes:
            mask = finder.find(folder, image)
            if shared and mask is not None and image.stem in test_images.get(directory.name, ()):
                raise DataError(
                    f"{mask}: could be the mask of the training image {image} or of the test "
                    f"image of the same name; put the masks of labelled training defects in "
                    f"{gt / TRAIN_MASK_FOLDER / directory.name}/ (or read no masks with "
                    "masks='ignore')"
                )
            found.append((folder, image, mask))
    if all(mask is None for _, _, mask in found):
        return None
    for folder, image, mask in found:
        if mask is None:
            raise DataError(
                f"{_missing_mask(folder, image)} (some labelled training defects have masks, "
                "so every one needs one)"
            )
    return [mask for _, _, mask in found]


def load_mvtec(
    root: str | Path,
    *,
    image_size: int | None = None,
    skip_bad_images: bool = False,
    masks: MaskMode = "auto",
) -> ImageData:
    """Read a dataset in MVTec AD's layout (one object category; see the module docstring).

    Args:
        root: the category folder, holding ``train/`` and ``test/``.
        image_size: side of the square images returned (default: kept when every image has the
            same square size, else 64).
        skip_bad_images: leave unreadable files out (listed in ``skipped_files``) instead of
            raising.
        masks: when to read the masks of ``ground_truth/``: ``"auto"`` (when the folder
            exists), ``"required"`` or ``"ignore"`` (see the module docstring).

    Raises:
        DataError: a folder is missing or empty, a file is not a readable image, or a mask is
            missing, unreadable or not the size of its image.
        ConfigError: ``masks`` is not one of ``auto``, ``required``, ``ignore``.
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
    gt = root / MASK_FOLDER
    read_masks = _reads_masks(
        masks, gt, "MVTec AD's ground_truth/<defect_type>/<image name>_mask.png"
    )
    if read_masks and TRAIN_MASK_FOLDER in {p.name for p in test_defects}:
        raise DataError(
            f"{root / 'test' / TRAIN_MASK_FOLDER}: a defect type named {TRAIN_MASK_FOLDER!r} "
            f"cannot be told apart from {gt / TRAIN_MASK_FOLDER}/, where the masks of labelled "
            "training defects live; rename the defect folder (or read no masks: masks='ignore')"
        )
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
    test_masks = train_masks = None
    if read_masks:
        train_masks, test_masks = _mvtec_masks(
            gt, groups, kept, n_train_dirs=len(train_dirs), side=images.shape[-1]
        )
    return ImageData(
        name="mvtec",
        train_images=images[:n_train],
        train_labels=labels[:n_train],
        test_images=images[n_train:],
        test_labels=labels[n_train:],
        class_names=class_names,
        source=str(root),
        skipped_files=[str(p) for p in skipped or []],
        test_masks=test_masks,
        train_masks=train_masks,
    )


def name_fraction(name: str) -> float:
    """A number in [0, 1) fixed by ``name`` alone: the first 8 bytes of its SHA-256."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_by_name(names: Sequence[str], fraction: float) -> np.ndarray:
    """Which files go to the test set (boolean mask over ``names``), by their names only.

    A file is a test file when :func:`name_fraction` of its name is below ``fraction``, so
    about that share of the files is in the test set and adding or removing a file moves no
    other. Each side keeps at least one file: when no file falls below ``fraction``, the one
    with the smallest value goes to the test set; when every file does and ``fraction < 1``
    with at least 2 files, the one with the largest value stays for training. Only then, in
    folders too small for the rule to reach both sides, can one file's side depend on the
    others.

    Args:
        names: file names, each relative to its class folder.
        fraction: share of the files in the test set, in (0, 1].
    """
    values = np.array([name_fraction(name) for name in names], dtype=np.float64)
    is_test = values < fraction
    if len(values) and not is_test.any():
        is_test[np.argmin(values)] = True
    if len(values) >= 2 and fraction < 1 and is_test.all():
        is_test[np.argmax(values)] = False
    return is_test


def load_normal_anomaly(
    root: str | Path,
    *,
    image_size: int | None = None,
    skip_bad_images: bool = False,
    test_fraction: float = 0.2,
    anomaly_test_fraction: float = 0.5,
    masks: MaskMode = "auto",
) -> ImageData:
    """Read ``<root>/normal/`` and ``<root>/anomaly/`` and split them into train and test.

    Each file's side depends on its name alone (see :func:`split_by_name`), so every run sees
    the same test set, and adding or removing images leaves the others where they were.

    Args:
        root: the folder holding ``normal/`` and ``anomaly/``.
        image_size: as for :func:`load_mvtec`.
        skip_bad_images: as for :func:`load_mvtec`.
        test_fraction: share of the normal images in the test set, in (0, 1).
        anomaly_test_fraction: share of the anomalies in the test set, in (0, 1]; the others
            form the pool labelled training anomalies are drawn from (1: none, all are tested).
        masks: when to read the masks of ``<root>/masks/`` (``<name>_mask.<ext>`` for
            ``anomaly/<name>.<ext>``): ``"auto"`` (when the folder exists), ``"required"`` or
            ``"ignore"`` (see the module docstring). When read, every anomaly needs one.

    Raises:
        DataError: a folder is missing or empty, holds fewer than 2 normal images, a file is
            not a readable image, or a mask is missing, unreadable or not the size of its image.
        ConfigError: a fraction is out of range, or ``masks`` is not a known mode.
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
    mask_folder = root / FOLDER_LAYOUT_MASKS
    read_masks = _reads_masks(masks, mask_folder, "a mask <name>_mask.png for every anomaly")
    skipped: list[Path] | None = [] if skip_bad_images else None
    groups = [(root / name, _class_files(root / name)) for name in class_names]
    kept, images = _read_dataset_images(groups, image_size, skipped)
    normal_files, anomaly_files = kept
    if len(normal_files) < 2:
        raise DataError(
            f"{root / 'normal'}: needs at least 2 readable images (one to train, one to test)"
        )
    # rows of ``images``: the normal files, then the anomalies, each in sorted order
    labels = np.repeat(np.array([0, 1], dtype=np.int64), [len(normal_files), len(anomaly_files)])
    fractions = (test_fraction, anomaly_test_fraction)
    is_test = np.concatenate(
        [
            split_by_name([p[0].relative_to(directory).as_posix() for p in probes], fraction)
            for (directory, _), probes, fraction in zip(groups, kept, fractions, strict=True)
        ]
    )
    test_masks = train_masks = None
    if read_masks:
        finder = _MaskFinder()
        sources: list[Path | None] = [None] * len(normal_files)
        sources += [finder.require(mask_folder, image) for image, _, _ in anomaly_files]
        all_masks = _read_masks(normal_files + anomaly_files, sources, images.shape[-1])
        train_masks, test_masks = all_masks[~is_test], all_masks[is_test]
    return ImageData(
        name="folder",
        train_images=images[~is_test],
        train_labels=labels[~is_test],
        test_images=images[is_test],
        test_labels=labels[is_test],
        class_names=class_names,
        source=str(root),
        skipped_files=[str(p) for p in skipped or []],
        test_masks=test_masks,
        train_masks=train_masks,
    )
