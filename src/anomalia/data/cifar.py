"""Reader for CIFAR-10's python tarball, read without unpacking it.

The batches inside are Python pickles; they are unpickled with an unpickler that builds plain
containers and NumPy arrays only, so a hostile file can never run code. The tarball's MD5 is
checked before it is read (:func:`anomalia.data.fetch.verify_checksums`).
"""

from __future__ import annotations

import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from anomalia.data.types import DatasetSpec, ImageData
from anomalia.errors import DataError


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only: never runs code from the file."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if name == "_reconstruct":  # numpy 2 renamed numpy.core to numpy._core
            core = getattr(np, "_core", None) or np.core
            return core.multiarray._reconstruct
        return getattr(np, name)


def _read_cifar_batch(
    archive: tarfile.TarFile, member: str, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 data (N, 3072), int64 labels (N,)) of one pickled CIFAR batch in the tarball."""
    found = [m for m in archive.getmembers() if m.isfile() and Path(m.name).name == member]
    if len(found) != 1:
        raise DataError(f"{path}: {member} is missing; not the CIFAR-10 python tarball")
    handle = archive.extractfile(found[0])
    if handle is None:  # pragma: no cover - isfile() members always have contents
        raise DataError(f"{path}: cannot read {member}")
    try:
        batch = _ArrayUnpickler(handle, encoding="latin1").load()
    except Exception as err:  # corrupt pickles raise many types
        raise DataError(f"{path}: {member} is not a CIFAR batch ({err})") from err
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        raise DataError(f"{path}: {member} is not a CIFAR batch (no data and labels)")
    data, labels = np.asarray(batch["data"]), np.asarray(batch["labels"])
    valid = (
        data.dtype == np.uint8
        and data.shape[1:] == (3 * 32 * 32,)
        and labels.shape == (len(data),)
        and labels.dtype.kind in "iu"
        and (len(labels) == 0 or 0 <= labels.min() <= labels.max() < 10)
    )
    if not valid:
        raise DataError(
            f"{path}: {member} holds data {data.dtype} {data.shape} and labels {labels.shape}; "
            "expected uint8 (N, 3072) and N labels in 0..9"
        )
    return data, labels.astype(np.int64)


def read_cifar10(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Read CIFAR-10's python tarball without unpacking it.

    Returns:
        (train images (N, 3, 32, 32) uint8, train labels, test images, test labels).

    Raises:
        DataError: the file is not a readable tarball of the CIFAR-10 python batches.
    """
    path = Path(path)
    members = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for split, names in members.items():
                images, labels = [], []
                for member in names:
                    data, batch_labels = _read_cifar_batch(archive, member, path)
                    images.append(data.reshape(-1, 3, 32, 32))  # rows hold R, G, B planes
                    labels.append(batch_labels)
                arrays[split] = (np.concatenate(images), np.concatenate(labels))
    except (OSError, EOFError, tarfile.TarError, zlib.error) as err:
        raise DataError(f"{path}: cannot read the CIFAR-10 tarball ({err}); it is corrupt") from err
    return (*arrays["train"], *arrays["test"])


def load_cifar10(spec: DatasetSpec, path: Path) -> ImageData:
    """Read the tarball at ``path`` as the dataset ``spec`` (its MD5 already verified)."""
    train_images, train_labels, test_images, test_labels = read_cifar10(path)
    return ImageData(
        name=spec.name,
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        class_names=spec.class_names,
        source=str(path.parent),
    )
