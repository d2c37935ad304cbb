"""Images from request bytes, converted like training data; anomaly maps rendered as PNG.

:func:`decode_image` converts bytes exactly as :func:`anomalia.data.image_files.load_image`
converts files (both call :func:`~anomalia.data.image_files.convert_image`: EXIF orientation,
16-bit and float images scaled to 8 bits, the detector's channels, bilinear resizing); that
module does not import torch, so the ONNX serving path stays without it. On top, it refuses
what a server must not decode: an empty body, a format other than PNG, JPEG, BMP or TIFF, and
images beyond a pixel limit (before their pixels are decoded, so a small file declaring a huge
image costs nothing).
"""

from __future__ import annotations

import base64
import io
import warnings
from typing import Any

import numpy as np

from anomalia.data.image_files import SUPPORTED_FORMATS, convert_image

#: Content types ``/score`` accepts as a raw image body (and for multipart parts, with
#: ``application/octet-stream`` and none, which browsers and curl send for unknown files).
IMAGE_CONTENT_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/jpg", "image/bmp", "image/x-ms-bmp", "image/tiff"}
)


class ImageRejectedError(Exception):
    """An image the service will not score: ``status`` (4xx), ``code`` and a ``message``
    naming the problem."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def decode_image(data: bytes, *, mode: str, image_size: int, max_pixels: int) -> np.ndarray:
    """Decode one image file's bytes as uint8 (C, image_size, image_size), C = 1 (``"L"``) or 3.

    Raises:
        ImageRejectedError: 400 empty or undecodable (not an image, truncated, corrupt), 413 more
            than ``max_pixels`` pixels, 415 a format other than PNG, JPEG, BMP or TIFF, 422 an
            image mode that cannot be converted to ``mode``.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageRejectedError(400, "empty_image", "the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit is below Pillow's, whose warning would only repeat it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as opened:
                width, height = opened.size
                if width * height > max_pixels:
                    raise ImageRejectedError(
                        413,
                        "image_too_large",
                        f"the image is {width}x{height} = {width * height} pixels, more than the "
                        f"limit of {max_pixels} (anomalia serve --max-image-pixels)",
                    )
                opened.load()
                try:
                    return convert_image(opened, mode, image_size)
                except (ValueError, OSError) as err:
                    raise ImageRejectedError(
                        422,
                        "unsupported_mode",
                        f"image mode {opened.mode} cannot be converted to {mode} ({err})",
                    ) from err
    except ImageRejectedError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageRejectedError(
            413, "image_too_large", f"decompression bomb refused ({err})"
        ) from err
    except UnidentifiedImageError as err:
        raise ImageRejectedError(
            415,
            "unsupported_format",
            "not a PNG, JPEG, BMP or TIFF image (unknown format, or not an image)",
        ) from err
    except Exception as err:  # Pillow raises many types for broken files
        reason = str(err).strip() or type(err).__name__
        raise ImageRejectedError(
            400, "bad_image", f"not a readable PNG, JPEG, BMP or TIFF image ({reason})"
        ) from err


# --------------------------------------------------------------------------- anomaly maps
def _png_base64(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _heat(values: np.ndarray) -> np.ndarray:
    """Black -> red -> yellow -> white for values in [0, 1]: (H, W) -> (H, W, 3) in [0, 1]."""
    return np.clip(np.stack([3 * values, 3 * values - 1, 3 * values - 2], axis=-1), 0, 1)


def render_map(image: np.ndarray, anomaly_map: np.ndarray) -> dict[str, Any]:
    """An anomaly map as PNGs for a response.

    The map is scaled to [0, 1] by its own range: from min(0, its minimum) to its maximum, so
    the hottest pixel of every map is white whatever its value (compare images by their
    ``score``; ``min`` and ``max`` give the map's own range). ``map_png`` is that scaled map as
    8-bit gray; ``overlay_png`` is the scored image (converted and resized as for scoring) in
    gray with the map's colours laid over it, more opaque where the map is higher.

    Args:
        image: the scored image, uint8 (C, S, S).
        anomaly_map: float (H, W), higher = more anomalous.
    """
    from PIL import Image

    values = np.asarray(anomaly_map, dtype=np.float64)
    finite = values[np.isfinite(values)]
    smallest = float(finite.min()) if finite.size else 0.0
    high = float(finite.max()) if finite.size else 0.0
    low = min(0.0, smallest)
    values = np.nan_to_num(values, nan=low, posinf=high, neginf=low)
    scaled = np.clip((values - low) / (high - low), 0, 1) if high > low else np.zeros_like(values)
    height, width = scaled.shape
    gray = image.mean(axis=0) if image.shape[0] == 3 else image[0]  # (S, S)
    base = Image.fromarray(gray.astype(np.uint8))
    if base.size != (width, height):
        base = base.resize((width, height), Image.Resampling.BILINEAR)
    base_rgb = np.repeat(np.asarray(base, dtype=np.float64)[..., None] / 255.0, 3, axis=-1)
    alpha = 0.7 * scaled[..., None]  # (H, W, 1): the map shows where it is high
    overlay = (1 - alpha) * base_rgb + alpha * _heat(scaled)
    return {
        "overlay_png": _png_base64(np.rint(overlay * 255).astype(np.uint8)),
        "map_png": _png_base64(np.rint(scaled * 255).astype(np.uint8)),
        "min": smallest,
        "max": high,
        "height": int(height),
        "width": int(width),
    }
