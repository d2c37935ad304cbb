"""Datasets: where their files are found, how they are fetched and verified, how they are read.

Search order for a dataset's files: the ``data_dir`` argument, the ``ANOMALIA_DATA`` environment
variable, the user cache directory, the system-wide copy installed by a distribution package
(``/usr/share/datasets/<name>``), and finally a download with pooch (pinned checksums) into the
user cache. Each directory may hold the files directly or in a ``<name>/`` sub-directory.

Image-folder datasets (``mvtec``, ``folder``) are read from ``data_dir`` alone, by
:mod:`anomalia.data.folders`.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from anomalia.data.idx import read_idx
from anomalia.errors import ConfigError, DataError

ENV_VAR = "ANOMALIA_DATA"
#: Where distribution packages (Debian's ``dataset-fashion-mnist``) install datasets.
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: How a dataset's files are laid out: four IDX files, CIFAR's python tarball, or image folders.
IDX_LAYOUT, CIFAR_LAYOUT, FOLDER_LAYOUT = "idx", "cifar", "folder"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"


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
MVTEC = DatasetSpec(name="mvtec", folder="mvtec", layout=FOLDER_LAYOUT, files={})
USER_FOLDERS = DatasetSpec(name="folder", folder="folder", layout=FOLDER_LAYOUT, files={})

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


@dataclass
class ImageData:
    """A dataset in memory: uint8 images shaped (N, C, H, W) and integer class labels.

    ``skipped_files`` lists the unreadable files an image-folder dataset left out
    (``skip_bad_images``).
    """

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: str
    skipped_files: list[str] = field(default_factory=list)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def user_cache_dir() -> Path:
    """The per-user cache anomalia downloads into."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("anomalia"))


def candidate_dirs(spec: DatasetSpec, data_dir: str | Path | None = None) -> list[Path]:
    """Directories searched for ``spec``'s files, in order."""
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir))
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]))
    if spec.url:
        roots += [user_cache_dir(), SYSTEM_DATA_DIR]
    dirs: list[Path] = []
    for root in roots:
        dirs += [root, root / spec.folder]
    return dirs


def _file_in(directory: Path, stem: str) -> Path | None:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_files(spec: DatasetSpec, data_dir: str | Path | None = None) -> dict[str, Path] | None:
    """The dataset's files from the first directory that holds all of them, else None."""
    for directory in candidate_dirs(spec, data_dir):
        found = {key: _file_in(directory, stem) for key, stem in spec.files.items()}
        if all(found.values()):
            return {k: v for k, v in found.items() if v is not None}
    return None


def download(spec: DatasetSpec, dest: str | Path | None = None) -> Path:
    """Fetch ``spec``'s ``.gz`` files (or tarball) with pooch, checking the pinned MD5s.

    Returns:
        The directory now holding the files.
    """
    if not spec.url:
        raise DataError(f"dataset {spec.name!r} has no download source; pass its directory")
    import pooch

    target = Path(dest) if dest is not None else user_cache_dir() / spec.folder
    for stem in spec.files.values():
        fname = stem if stem.endswith(".gz") else f"{stem}.gz"
        try:
            pooch.retrieve(
                url=f"{spec.url}{fname}",
                known_hash=f"md5:{spec.md5_gz[stem]}",
                fname=fname,
                path=target,
                progressbar=False,
            )
        except Exception as err:  # network errors come in many types
            raise DataError(
                f"could not download {spec.name} ({fname} from {spec.url}): {err}.\n"
                + _where_to_put_files(spec)
            ) from err
    return target


def _where_to_put_files(spec: DatasetSpec) -> str:
    names = ", ".join(s if s.endswith(".gz") else f"{s}[.gz]" for s in spec.files.values())
    lines = [
        f"The {spec.name} files ({names}) can be provided in any of these ways:",
        "  1. pass --data-dir DIR (Python: data_dir=DIR) pointing at a directory holding them;",
        f"  2. set the environment variable {ENV_VAR}=DIR;",
    ]
    if spec.url:
        lines.append(f"  3. put them in the user cache {user_cache_dir() / spec.folder};")
        if spec.debian_package:
            lines.append(
                f"  4. on Debian/Ubuntu: apt-get install {spec.debian_package} "
                f"(installs {SYSTEM_DATA_DIR / spec.folder});"
            )
        lines.append(
            f"  {len(lines)}. run `anomalia download {spec.name}` on a machine with internet "
            "access."
        )
    return "\n".join(lines)


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    download_missing: bool = True,
    *,
    image_size: int | None = None,
    skip_bad_images: bool = False,
    test_fraction: float = 0.2,
    anomaly_test_fraction: float = 0.5,
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

    Raises:
        DataError: no copy found and none could be fetched, or a file fails verification.
        ConfigError: ``image_size`` given for a dataset that is not read from image folders.
    """
    spec = get_dataset_spec(name)
    if spec.layout == FOLDER_LAYOUT:
        return _load_image_folders(
            spec,
            data_dir,
            image_size=image_size,
            skip_bad_images=skip_bad_images,
            test_fraction=test_fraction,
            anomaly_test_fraction=anomaly_test_fraction,
        )
    if image_size is not None:
        raise ConfigError(
            f"image_size applies to the image-folder datasets (mvtec, folder), not {spec.name}; "
            "remove it"
        )
    if spec.name == USER_IDX.name and data_dir is None:
        raise DataError("dataset 'idx' reads your own IDX files: pass --data-dir DIR")
    files = find_files(spec, data_dir)
    if files is None:
        if not (download_missing and spec.url):
            searched = "\n".join(f"    {d}" for d in candidate_dirs(spec, data_dir))
            raise DataError(
                f"no copy of {spec.name} found. Searched:\n{searched}\n" + _where_to_put_files(spec)
            )
        download(spec, Path(data_dir) / spec.folder if data_dir else None)
        files = find_files(spec, data_dir)
        if files is None:  # pragma: no cover - pooch wrote them where we then look
            raise DataError(f"downloaded {spec.name} but cannot find its files")
    if spec.layout == CIFAR_LAYOUT:
        return _load_cifar(spec, files["archive"])
    if not spec.sha256:
        for key, path in files.items():
            stem = IDX_FILES[key]
            if path.suffix == ".gz" and stem in spec.md5_gz:
                _check_md5(path, spec.md5_gz[stem])
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


def _load_image_folders(
    spec: DatasetSpec, data_dir: str | Path | None, **options: Any
) -> ImageData:
    """The hook for image-folder datasets: read ``data_dir`` with :mod:`anomalia.data.folders`."""
    from anomalia.data import folders  # imports ImageData from this module

    if data_dir is None:
        raise DataError(f"dataset {spec.name!r} reads your own image folders: pass --data-dir DIR")
    if spec.name == MVTEC.name:
        return folders.load_mvtec(
            data_dir, image_size=options["image_size"], skip_bad_images=options["skip_bad_images"]
        )
    return folders.load_normal_anomaly(data_dir, **options)


def _check_md5(path: Path, expected: str) -> None:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise DataError(
            f"{path}: MD5 is {digest.hexdigest()}, expected {expected}; the file is corrupt, "
            "incomplete or a different dataset. Delete it and fetch it again"
        )


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


def _load_cifar(spec: DatasetSpec, path: Path) -> ImageData:
    """Verify the tarball's MD5 (before anything is unpickled), then read it."""
    _check_md5(path, spec.md5_gz[spec.files["archive"]])
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
