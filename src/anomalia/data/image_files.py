"""Single image files: reading one with Pillow, and streaming many in batches for scoring.

Files are read with Pillow (PNG, JPEG, BMP and TIFF, recognised by their content, whatever
their name); any other file is a :class:`BadImageError` naming it. Images are returned as uint8
(C, H, W) with C = 1 (grayscale ``"L"``) or 3 (colour ``"RGB"``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from anomalia.errors import ConfigError, DataError

#: Pillow formats anomalia reads; others are refused even when Pillow could open them.
SUPPORTED_FORMATS = ("PNG", "JPEG", "BMP", "TIFF")
#: File-name endings searched for when a directory is given for scoring.
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
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

    The size is the one :func:`load_image` sees: width and height are swapped when the EXIF
    orientation turns the image by 90 degrees.

    Raises:
        BadImageError: the file cannot be opened as a supported image.
    """
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path, formats=SUPPORTED_FORMATS) as image:
            return _displayed_size(image), str(image.mode)
    except Exception as err:  # Pillow raises many types for broken files
        raise BadImageError(path, _reason(err)) from err


#: EXIF orientations (tag 274) that turn an image by 90 or 270 degrees.
_TURNED_ORIENTATIONS = frozenset({5, 6, 7, 8})


def _displayed_size(image: Any) -> tuple[int, int]:
    """(width, height) after EXIF orientation, as ``ImageOps.exif_transpose`` would give."""
    width, height = int(image.width), int(image.height)
    if image.getexif().get(274) in _TURNED_ORIENTATIONS:
        return height, width
    return width, height


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
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path, formats=SUPPORTED_FORMATS) as opened:
            opened.load()
            return convert_image(opened, mode, image_size)
    except Exception as err:  # Pillow raises many types for broken files
        raise BadImageError(path, _reason(err)) from err


def convert_image(image: Any, mode: str, image_size: int) -> np.ndarray:
    """A loaded Pillow image as uint8 (C, image_size, image_size), converted like training
    data: EXIF orientation applied, 16-bit and float images scaled to 8 bits, converted to
    ``mode`` (``"L"`` or ``"RGB"``), resized bilinearly. Shared by files and the HTTP service.

    Raises:
        ValueError, OSError: Pillow cannot convert the image's mode.
    """
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image) or image
    image = _to_8bit(image).convert(mode)
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.uint8)
    if pixels.ndim == 2:  # (H, W) -> (1, H, W)
        return pixels[None].copy()
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))  # (H, W, C) -> (C, H, W)


def load_mask(path: str | Path, image_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode a ground-truth mask: (uint8 (image_size, image_size) in {0, 1}, its (width,
    height) before resizing).

    A pixel is a defect pixel (1) when its value is above 0. Single-band masks (1-bit, 8-bit,
    16-bit, 32-bit or float) are compared as stored, so a 16-bit or float mask holding 1 for
    defects counts; any other mode (RGB, palette, with alpha) is converted to grayscale ``"L"``
    first. EXIF orientation is applied as for images, and the mask is resized with
    nearest-neighbour resampling, so it stays binary and defects keep their edges.

    Raises:
        DataError: the file cannot be decoded as a PNG, JPEG, BMP or TIFF image.
    """
    from PIL import Image, ImageOps

    path = Path(path)
    try:
        with Image.open(path, formats=SUPPORTED_FORMATS) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened) or opened
            if len(image.getbands()) != 1 or image.mode == "P":
                image = image.convert("L")
            size = (int(image.width), int(image.height))
            binary = Image.fromarray((np.asarray(image) > 0).astype(np.uint8))
            if size != (image_size, image_size):
                binary = binary.resize((image_size, image_size), Image.Resampling.NEAREST)
            return np.asarray(binary, dtype=np.uint8).copy(), size
    except Exception as err:  # Pillow raises many types for broken files
        raise DataError(
            f"{path}: this mask is not a readable PNG, JPEG, BMP or TIFF image ({_reason(err)}); "
            "replace it, or read no masks (masks='ignore')"
        ) from err


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


def check_image_size(image_size: int | None) -> None:
    """Raise :class:`~anomalia.errors.ConfigError` unless ``image_size`` is None or positive."""
    if image_size is not None and (isinstance(image_size, bool) or image_size < 1):
        raise ConfigError(f"image_size must be a positive number of pixels, got {image_size}")


# ----------------------------------------------------------------------- streaming for scoring
def expand_image_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    """Image files named by ``paths``: files as given, directories searched recursively for
    names ending in .png, .jpg, .jpeg, .bmp, .tif or .tiff (any case), glob patterns expanded.

    Paths are produced lazily and in a stable order (sorted within each directory and pattern),
    so any number of files can be streamed; hidden files and folders are left out of searches.

    Raises:
        DataError: a path is neither a file, a directory nor a pattern matching something.
    """
    for raw in paths:
        path = Path(raw)
        pattern = os.fspath(raw)
        if path.is_dir():
            yield from _walk_images(path)
        elif path.is_file():
            yield path
        elif glob.has_magic(pattern):
            matches = sorted(glob.iglob(pattern, recursive=True))
            if not matches:
                raise DataError(f"{pattern}: no file matches this pattern")
            for match in matches:
                found = Path(match)
                if found.is_dir():
                    yield from _walk_images(found)
                elif found.is_file():
                    yield found
        else:
            raise DataError(f"{pattern}: no such file or directory")


def _walk_images(directory: Path) -> Iterator[Path]:
    for parent, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES:
                yield Path(parent) / name


def iter_image_batches(
    paths: Iterable[str | os.PathLike[str]],
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
    check_image_size(image_size)
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
