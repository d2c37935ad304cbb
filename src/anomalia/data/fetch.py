"""Where a dataset's files are found, how they are fetched, and how they are verified.

Search order for a dataset's files: the ``data_dir`` argument, the ``ANOMALIA_DATA`` environment
variable, the user cache directory, the system-wide copy installed by a distribution package
(``/usr/share/datasets/<name>``), and finally a download with pooch (pinned checksums) into the
user cache. Each directory may hold the files directly or in a ``<name>/`` sub-directory.

Checksums: pooch checks the pinned MD5 of every ``.gz`` download; :func:`verify_checksums`
checks the MD5 of local ``.gz`` files and of CIFAR's tarball before they are read; the SHA-256
of a decompressed IDX payload is checked by :func:`anomalia.data.idx.read_idx` as it reads.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from anomalia.data.types import CIFAR_LAYOUT, DatasetSpec
from anomalia.errors import DataError

ENV_VAR = "ANOMALIA_DATA"
#: Where distribution packages (Debian's ``dataset-fashion-mnist``) install datasets.
SYSTEM_DATA_DIR = Path("/usr/share/datasets")


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


def find_or_download(
    spec: DatasetSpec, data_dir: str | Path | None = None, download_missing: bool = True
) -> dict[str, Path]:
    """The dataset's files (key -> path): a local copy, else a fresh download if allowed.

    A download goes to ``<data_dir>/<folder>`` when ``data_dir`` is given, else to the user
    cache.

    Raises:
        DataError: no copy found and none could be fetched; the message lists the directories
            searched and every way of providing the files.
    """
    files = find_files(spec, data_dir)
    if files is not None:
        return files
    if not (download_missing and spec.url):
        searched = "\n".join(f"    {d}" for d in candidate_dirs(spec, data_dir))
        raise DataError(
            f"no copy of {spec.name} found. Searched:\n{searched}\n" + where_to_put_files(spec)
        )
    download(spec, Path(data_dir) / spec.folder if data_dir else None)
    files = find_files(spec, data_dir)
    if files is None:  # pragma: no cover - pooch wrote them where we then look
        raise DataError(f"downloaded {spec.name} but cannot find its files")
    return files


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
                + where_to_put_files(spec)
            ) from err
    return target


def where_to_put_files(spec: DatasetSpec) -> str:
    """Every way of providing ``spec``'s files, for error messages."""
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


def verify_checksums(spec: DatasetSpec, files: dict[str, Path]) -> None:
    """Check the pinned MD5s of local files before anything reads them.

    CIFAR's tarball is always checked (before anything in it is unpickled). IDX ``.gz`` files
    are checked only when no SHA-256 is pinned: a pinned SHA-256 of the decompressed payload is
    checked while reading instead, and uncompressed copies without one go unchecked.

    Raises:
        DataError: a file's MD5 differs from the pinned one.
    """
    if spec.layout == CIFAR_LAYOUT:
        check_md5(files["archive"], spec.md5_gz[spec.files["archive"]])
        return
    if spec.sha256:
        return
    for key, path in files.items():
        stem = spec.files[key]
        if path.suffix == ".gz" and stem in spec.md5_gz:
            check_md5(path, spec.md5_gz[stem])


def check_md5(path: Path, expected: str) -> None:
    """Raise :class:`~anomalia.errors.DataError` unless the MD5 of ``path`` is ``expected``."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise DataError(
            f"{path}: MD5 is {digest.hexdigest()}, expected {expected}; the file is corrupt, "
            "incomplete or a different dataset. Delete it and fetch it again"
        )
