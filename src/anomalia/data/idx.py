"""Reader for the IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed, and for a
dataset stored as its four IDX files (train and test images and labels).

The header is checked before any large allocation: the payload size it implies must be sane and
must match what the file holds, so a truncated, padded, corrupt or hostile file is an error that
names the file, never a wrong array.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from anomalia.data.types import IDX_FILES, DatasetSpec, ImageData
from anomalia.errors import DataError

# IDX type codes -> big-endian numpy dtypes.
_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAX_PAYLOAD_BYTES = 4 * 1024**3  # far above any IDX dataset; stops absurd headers early
_CHUNK = 1 << 20


def _open(path: Path) -> io.BufferedIOBase:
    with path.open("rb") as probe:
        is_gzip = probe.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if is_gzip else path.open("rb")


def _read_exact(handle: io.BufferedIOBase, n_bytes: int, path: Path, what: str) -> bytes:
    data = handle.read(n_bytes)
    if len(data) != n_bytes:
        raise DataError(
            f"{path}: truncated IDX file ({what}: expected {n_bytes} bytes, found {len(data)}); "
            "delete it and fetch the file again"
        )
    return data


def read_idx(path: str | Path, expected_sha256: str | None = None) -> np.ndarray:
    """Read one IDX file into a NumPy array (native byte order).

    Args:
        path: the file, raw or gzip-compressed (detected from its first bytes, not its name).
        expected_sha256: if given, the SHA-256 of the decompressed file must match.

    Raises:
        DataError: the file is missing, unreadable, truncated, has trailing bytes, an invalid
            header, or the wrong checksum.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such IDX file")
    digest = hashlib.sha256()
    try:
        with _open(path) as handle:
            header = _read_exact(handle, 4, path, "header")
            zero, type_code, n_dims = int.from_bytes(header[:2], "big"), header[2], header[3]
            if zero != 0 or type_code not in _DTYPES or not 1 <= n_dims <= 4:
                raise DataError(
                    f"{path}: not an IDX file (magic bytes {header.hex()}; expected 0000 followed "
                    "by a type code 08-0e and 1-4 dimensions)"
                )
            dims_raw = _read_exact(handle, 4 * n_dims, path, "dimensions")
            dims = tuple(
                int.from_bytes(dims_raw[i : i + 4], "big") for i in range(0, 4 * n_dims, 4)
            )
            dtype = _DTYPES[type_code]
            n_bytes = math.prod(dims) * dtype.itemsize  # Python ints: no overflow
            if n_bytes == 0 or n_bytes > MAX_PAYLOAD_BYTES:
                raise DataError(
                    f"{path}: IDX header claims dimensions {dims} ({n_bytes} bytes), which is "
                    "empty or absurdly large; the file is corrupt"
                )
            digest.update(header + dims_raw)
            chunks = []
            remaining = n_bytes
            while remaining > 0:
                chunk = handle.read(min(_CHUNK, remaining))
                if not chunk:
                    raise DataError(
                        f"{path}: truncated IDX file (header {dims} needs {n_bytes} payload bytes, "
                        f"found {n_bytes - remaining}); delete it and fetch the file again"
                    )
                chunks.append(chunk)
                remaining -= len(chunk)
            if handle.read(1):
                raise DataError(
                    f"{path}: IDX file has bytes beyond the {dims} its header declares; "
                    "the file is corrupt or not what its name says"
                )
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise DataError(
            f"{path}: cannot read IDX file ({err}); it is corrupt or unreadable"
        ) from err
    payload = b"".join(chunks)
    digest.update(payload)
    if expected_sha256 is not None and digest.hexdigest() != expected_sha256:
        raise DataError(
            f"{path}: SHA-256 of the decompressed file is {digest.hexdigest()}, expected "
            f"{expected_sha256}; the file is corrupt or a different dataset. Delete it and fetch "
            "it again"
        )
    return np.frombuffer(payload, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write ``array`` as an IDX file (gzip-compressed when the name ends in ``.gz``).

    Used by tests and by users who want to hand anomalia their own data in this format.
    """
    path = Path(path)
    codes = {dt.newbyteorder("="): code for code, dt in _DTYPES.items()}
    dtype = array.dtype.newbyteorder("=")
    if dtype not in codes:
        raise DataError(f"write_idx: dtype {array.dtype} has no IDX type code")
    header = bytes([0, 0, codes[dtype], array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + np.ascontiguousarray(array).astype(_DTYPES[codes[dtype]]).tobytes()
    compress = path.suffix == ".gz" if compress is None else compress
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)


def read_idx_dataset(spec: DatasetSpec, files: dict[str, Path]) -> ImageData:
    """Read the four IDX files of ``spec`` (keys of :data:`~anomalia.data.types.IDX_FILES`).

    Each file's SHA-256 is checked while reading when ``spec`` pins one. Images become uint8
    (N, C, H, W); class names come from ``spec``, else from the largest label.

    Raises:
        DataError: a file is unreadable or fails its checksum, or the files do not belong
            together (counts or image shapes differ).
    """
    arrays = {key: read_idx(path, spec.sha256.get(IDX_FILES[key])) for key, path in files.items()}
    data = ImageData(
        name=spec.name,
        train_images=_as_nchw(arrays["train_images"], files["train_images"]),
        train_labels=_as_labels(arrays["train_labels"], files["train_labels"]),
        test_images=_as_nchw(arrays["test_images"], files["test_images"]),
        test_labels=_as_labels(arrays["test_labels"], files["test_labels"]),
        class_names=spec.class_names,
        source=str(files["train_images"].parent),
    )
    for split in ("train", "test"):
        n_img = len(getattr(data, f"{split}_images"))
        n_lab = len(getattr(data, f"{split}_labels"))
        if n_img != n_lab:
            raise DataError(
                f"{files[f'{split}_images']} holds {n_img} images but "
                f"{files[f'{split}_labels']} holds {n_lab} labels; the files do not belong together"
            )
    if data.train_images.shape[1:] != data.test_images.shape[1:]:
        raise DataError(
            f"train images are {data.train_images.shape[1:]} but test images are "
            f"{data.test_images.shape[1:]}; the files do not belong together"
        )
    if not data.class_names:
        n_classes = int(max(data.train_labels.max(), data.test_labels.max())) + 1
        data.class_names = tuple(str(i) for i in range(n_classes))
    return data


def _as_nchw(images: np.ndarray, path: Path) -> np.ndarray:
    if images.dtype != np.uint8:
        raise DataError(f"{path}: images must be unsigned bytes (IDX type 08), got {images.dtype}")
    if images.ndim == 3:  # (N, H, W) grayscale
        return images[:, None, :, :]
    if images.ndim == 4 and images.shape[-1] in (1, 3):  # (N, H, W, C)
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    raise DataError(f"{path}: expected images shaped (N, H, W) or (N, H, W, C), got {images.shape}")


def _as_labels(labels: np.ndarray, path: Path) -> np.ndarray:
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DataError(f"{path}: expected a 1-d array of integer labels, got {labels.shape}")
    if labels.min() < 0:
        raise DataError(f"{path}: labels must be non-negative, found {labels.min()}")
    return labels.astype(np.int64)
