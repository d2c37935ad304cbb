"""The registered datasets and :func:`load_dataset`, which finds, verifies and reads one.

Benchmark datasets (``fashion_mnist``, ``mnist``, ``cifar10``) and the user's own IDX files
(``idx``) are found or fetched by :mod:`anomalia.data.fetch` and read by
:mod:`anomalia.data.idx` or :mod:`anomalia.data.cifar`. Image-folder datasets (``mvtec``,
``folder``) are read from ``data_dir`` alone, by :mod:`anomalia.data.folders`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from anomalia.data.cifar import load_cifar10
from anomalia.data.fetch import find_or_download, verify_checksums
from anomalia.data.folders import MASK_MODES, MaskMode, load_mvtec, load_normal_anomaly
from anomalia.data.idx import read_idx_dataset
from anomalia.data.types import CIFAR_LAYOUT, FOLDER_LAYOUT, DatasetSpec, ImageData
from anomalia.errors import ConfigError, DataError

CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"

FASHION_MNIST = DatasetSpec(
    name="fashion_mnist",
    folder="fashion-mnist",
    class_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    # SHA-256 of the decompressed files (the Debian package recompresses the .gz files).
    sha256={
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",  # noqa: E501
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",  # noqa: E501
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",  # noqa: E501
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",  # noqa: E501
    },
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    md5_gz={
        "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    debian_package="dataset-fashion-mnist",
)

#: MNIST: no SHA-256 of the decompressed files is pinned, so the MD5 of each ``.gz`` file is
#: checked when the files are gzip-compressed (uncompressed copies are read unchecked).
MNIST = DatasetSpec(
    name="mnist",
    folder="mnist",
    class_names=tuple(str(digit) for digit in range(10)),
    url="https://ossci-datasets.s3.amazonaws.com/mnist/",
    md5_gz={
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
)

#: CIFAR-10's python tarball, read without unpacking it; its MD5 is checked on every load.
CIFAR10 = DatasetSpec(
    name="cifar10",
    folder="cifar-10",
    class_names=(
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
    url="https://www.cs.toronto.edu/~kriz/",
    md5_gz={CIFAR10_ARCHIVE: "c58f30108f718f92721af3b95e74349a"},
    layout=CIFAR_LAYOUT,
    files={"archive": CIFAR10_ARCHIVE},
)

#: Your own images in MVTec AD's layout, or in normal/ and anomaly/ folders; need ``data_dir``.
#: By default every labelled training anomaly they hold is used (no share to meet).
MVTEC = DatasetSpec(
    name="mvtec", folder="mvtec", layout=FOLDER_LAYOUT, files={}, default_anomaly_ratio=None
)
USER_FOLDERS = DatasetSpec(
    name="folder", folder="folder", layout=FOLDER_LAYOUT, files={}, default_anomaly_ratio=None
)

#: Any data a user provides in the four-file IDX layout; needs ``data_dir``, no checksums.
USER_IDX = DatasetSpec(name="idx", folder="idx")

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec for spec in (FASHION_MNIST, USER_IDX, MNIST, CIFAR10, MVTEC, USER_FOLDERS)
}


def available_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(DATASETS)


def get_dataset_spec(name: str) -> DatasetSpec:
    """The registered dataset ``name``, or an error listing the valid names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown dataset {name!r}; available: {', '.join(available_datasets())}"
        ) from None


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download_missing: bool = True,
    *,
    image_size: int | None = None,
    skip_bad_images: bool = False,
    test_fraction: float = 0.2,
    anomaly_test_fraction: float = 0.5,
    masks: MaskMode = "auto",
) -> ImageData:
    """Find (or fetch), verify and read a dataset.

    Args:
        name: registered dataset name.
        data_dir: directory searched first (the only one for image-folder datasets).
        download_missing: download when no local copy is found.
        image_size: image-folder datasets only: side images are resized to (default: kept when
            all share one square size, else 64).
        skip_bad_images: image-folder datasets only: leave unreadable files out (listed in
            ``skipped_files``) instead of raising.
        test_fraction: ``folder`` dataset only: share of normal images in the test set.
        anomaly_test_fraction: ``folder`` dataset only: share of anomalies in the test set.
        masks: image-folder datasets only: when to read ground-truth masks, ``"auto"`` (when
            the mask folder exists), ``"required"`` or ``"ignore"`` (see
            :mod:`anomalia.data.folders`); other datasets have none and accept any mode.

    Raises:
        DataError: no copy found and none could be fetched, or a file fails verification.
        ConfigError: ``image_size`` or ``masks="required"`` given for a dataset that is not
            read from image folders, or ``masks`` is not a known mode.
    """
    spec = get_dataset_spec(name)
    if masks not in MASK_MODES:
        raise ConfigError(f"masks must be one of {', '.join(MASK_MODES)}, got {masks!r}")
    if spec.reads_image_folders:
        return _load_image_folders(
            spec,
            data_dir,
            image_size=image_size,
            skip_bad_images=skip_bad_images,
            test_fraction=test_fraction,
            anomaly_test_fraction=anomaly_test_fraction,
            masks=masks,
        )
    if masks == "required":
        raise ConfigError(
            f"masks='required': {spec.name} has no ground-truth masks; only the image-folder "
            "datasets (mvtec, folder) can have them"
        )
    if image_size is not None:
        raise ConfigError(
            f"image_size applies to the image-folder datasets (mvtec, folder), not {spec.name}; "
            "remove it"
        )
    if spec.name == USER_IDX.name and data_dir is None:
        raise DataError("dataset 'idx' reads your own IDX files: pass --data-dir DIR")
    files = find_or_download(spec, data_dir, download_missing)
    verify_checksums(spec, files)
    if spec.layout == CIFAR_LAYOUT:
        return load_cifar10(spec, files["archive"])
    return read_idx_dataset(spec, files)


def _load_image_folders(
    spec: DatasetSpec, data_dir: str | Path | None, **options: Any
) -> ImageData:
    """Read ``data_dir`` in the layout of ``spec`` (see :mod:`anomalia.data.folders`)."""
    if data_dir is None:
        raise DataError(f"dataset {spec.name!r} reads your own image folders: pass --data-dir DIR")
    if spec.name == MVTEC.name:
        return load_mvtec(
            data_dir,
            image_size=options["image_size"],
            skip_bad_images=options["skip_bad_images"],
            masks=options["masks"],
        )
    return load_normal_anomaly(data_dir, **options)
