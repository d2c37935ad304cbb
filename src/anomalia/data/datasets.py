"""Datasets: where their files are found, how they are fetched and verified, how they are read.

Search order for a dataset's files: the ``data_dir`` argument, the ``ANOMALIA_DATA`` environment
variable, the user cache directory, the system-wide copy installed by a distribution package
(``/usr/share/datasets/<name>``), and finally a download with pooch (pinned checksums) into the
user cache. Each directory may hold the files directly or in a ``<name>/`` sub-directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anomalia.data.idx import read_idx
from anomalia.errors import DataError

ENV_VAR = "ANOMALIA_DATA"
#: Where distribution packages (Debian's ``dataset-fashion-mnist``) install datasets.
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset in the four-file IDX layout.

    Attributes:
        name: registry name.
        folder: sub-directory name used in caches and system directories.
        class_names: names of classes 0..n-1 (empty: derived from the labels).
        sha256: SHA-256 of each decompressed file; empty for user data (no check).
        url: base URL of the canonical mirror; empty when the dataset cannot be downloaded.
        md5_gz: MD5 of each ``.gz`` download, pinned for pooch.
    """

    name: str
    folder: str
    class_names: tuple[str, ...] = ()
    sha256: dict[str, str] = field(default_factory=dict)
    url: str = ""
    md5_gz: dict[str, str] = field(default_factory=dict)


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
)

#: Any data a user provides in the four-file IDX layout; needs ``data_dir``, no checksums.
USER_IDX = DatasetSpec(name="idx", folder="idx")

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (FASHION_MNIST, USER_IDX)}


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
    """A dataset in memory: uint8 images shaped (N, C, H, W) and integer class labels."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...]
    source: str

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
    """The four files from the first directory that holds all of them, else None."""
    for directory in candidate_dirs(spec, data_dir):
        found = {key: _file_in(directory, stem) for key, stem in IDX_FILES.items()}
        if all(found.values()):
            return {k: v for k, v in found.items() if v is not None}
    return None


def download(spec: DatasetSpec, dest: str | Path | None = None) -> Path:
    """Fetch ``spec``'s four ``.gz`` files with pooch, checking the pinned MD5s.

    Returns:
        The directory now holding the files.
    """
    if not spec.url:
        raise DataError(f"dataset {spec.name!r} has no download source; pass its directory")
    import pooch

    target = Path(dest) if dest is not None else user_cache_dir() / spec.folder
    for stem in IDX_FILES.values():
        try:
            pooch.retrieve(
                url=f"{spec.url}{stem}.gz",
                known_hash=f"md5:{spec.md5_gz[stem]}",
                fname=f"{stem}.gz",
                path=target,
                progressbar=False,
            )
        except Exception as err:  # network errors come in many types
            raise DataError(
                f"could not download {spec.name} ({stem}.gz from {spec.url}): {err}.\n"
                + _where_to_put_files(spec)
            ) from err
    return target


def _where_to_put_files(spec: DatasetSpec) -> str:
    names = ", ".join(f"{s}[.gz]" for s in IDX_FILES.values())
    lines = [
        f"The {spec.name} files ({names}) can be provided in any of these ways:",
        "  1. pass --data-dir DIR (Python: data_dir=DIR) pointing at a directory holding them;",
        f"  2. set the environment variable {ENV_VAR}=DIR;",
    ]
    if spec.url:
        lines += [
            f"  3. put them in the user cache {user_cache_dir() / spec.folder};",
            f"  4. on Debian/Ubuntu: apt-get install dataset-{spec.folder} "
            f"(installs {SYSTEM_DATA_DIR / spec.folder});",
            f"  5. run `anomalia download {spec.name}` on a machine with internet access.",
        ]
    return "\n".join(lines)


def load_dataset(
    name: str, data_dir: str | Path | None = None, download_missing: bool = True
) -> ImageData:
    """Find (or fetch), verify and read a dataset.

    Args:
        name: registered dataset name.
        data_dir: directory searched first.
        download_missing: download when no local copy is found.

    Raises:
        DataError: no copy found and none could be fetched, or a file fails verification.
    """
    spec = get_dataset_spec(name)
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
