"""Plain data types shared by the readers: a dataset in memory and a registered dataset's record.

Nothing here reads a file; every other module of :mod:`anomalia.data` may import from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Keys and file names of the four files of an IDX dataset (``.gz`` variants are found too).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: How a dataset's files are laid out: four IDX files, CIFAR's python tarball, or image folders.
IDX_LAYOUT, CIFAR_LAYOUT, FOLDER_LAYOUT = "idx", "cifar", "folder"
#: Deep SAD's share of labelled anomalies in the training set (gamma_l), used in its tables.
DEEP_SAD_ANOMALY_RATIO = 0.05


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: where its files come from and how they are laid out.

    Attributes:
        name: registry name.
        folder: sub-directory name used in caches and system directories.
        class_names: names of classes 0..n-1 (empty: derived from the labels).
        sha256: SHA-256 of each decompressed file; empty for user data (no check).
        url: base URL of the canonical mirror; empty when the dataset cannot be downloaded.
        md5_gz: MD5 of each ``.gz`` download, pinned for pooch. When ``sha256`` is empty, the
            MD5 of a ``.gz`` file found locally is checked too (uncompressed files go unchecked).
        layout: ``idx`` (four IDX files), ``cifar`` (CIFAR's python tarball) or ``folder``
            (image folders, see :mod:`anomalia.data.folders`).
        files: key -> file name of the files to find (``.gz`` variants are found too).
        debian_package: the distribution package that installs the files, if any.
        default_anomaly_ratio: the share of labelled anomalies in the training set (gamma_l)
            used when a run does not set one: Deep SAD's 0.05 for the benchmark datasets, whose
            other classes hold thousands of anomalies to draw from; ``None`` ("every labelled
            anomaly of the training pool", see :func:`anomalia.data.protocol.make_split`) for
            image folders, which hold as many labelled defects as their owner collected.
    """

    name: str
    folder: str
    class_names: tuple[str, ...] = ()
    sha256: dict[str, str] = field(default_factory=dict)
    url: str = ""
    md5_gz: dict[str, str] = field(default_factory=dict)
    layout: str = IDX_LAYOUT
    files: dict[str, str] = field(default_factory=lambda: dict(IDX_FILES))
    debian_package: str = ""
    default_anomaly_ratio: float | None = DEEP_SAD_ANOMALY_RATIO

    @property
    def reads_image_folders(self) -> bool:
        """True for the image-folder layouts, read from ``data_dir`` alone (no download)."""
        return self.layout == FOLDER_LAYOUT


@dataclass
class ImageData:
    """A dataset in memory: uint8 images shaped (N, C, H, W) and integer class labels.

    ``skipped_files`` lists the unreadable files an image-folder dataset left out
    (``skip_bad_images``).

    ``test_masks`` and ``train_masks`` are the ground-truth defect masks of image-folder
    datasets (see :mod:`anomalia.data.folders`): uint8 (N, S, S) in {0, 1} (1 = defect pixel),
    row i belonging to image i of ``test_images`` / ``train_images``, resized to the images' side
    S with nearest-neighbour resampling; all zeros for normal images. ``None`` where the masks are
    unknown: datasets without masks, masks not read, or training defects that came without any.
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    skipped_files: list[str] = field(default_factory=list)
    test_masks: np.ndarray | None = None
    train_masks: np.ndarray | None = None

    @property
    def n_classes(self) -> int:
        return len(self.class_names)
