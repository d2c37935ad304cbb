"""Small helpers usable from every layer: seeding, atomic writes, devices, versions."""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) so a run can be repeated exactly on CPU."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` and rename it over ``path`` only on success.

    A crash or kill while writing leaves either the old file or none, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates the file owner-only (0600); give it the permissions open() would have.
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=False)
        handle.write("\n")


def write_csv(
    path: str | Path, rows: list[dict[str, Any]], fields: list[str] | None = None
) -> None:
    """Write dict rows as CSV, atomically; columns default to the keys in first-seen order."""
    import csv

    fields = fields if fields is not None else list(dict.fromkeys(k for row in rows for k in row))
    with atomic_open(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def torch_save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` through a temporary file and a rename."""
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)


def resolve_device(accelerator: str = "auto") -> torch.device:
    """The device used for scoring: the accelerator asked for, or the best one present."""
    if accelerator in ("cpu",):
        return torch.device("cpu")
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    if accelerator in ("auto", "mps") and torch.backends.mps.is_available():
        return torch.device("mps")
    if accelerator in ("gpu", "cuda", "mps"):
        from anomalia.errors import ConfigError

        raise ConfigError(
            f"accelerator={accelerator!r} was asked for but no such device is available; "
            "use --accelerator auto or cpu"
        )
    return torch.device("cpu")


def versions() -> dict[str, str]:
    """Versions recorded in every run directory."""
    import lightning

    from anomalia import __version__

    return {
        "anomalia": __version__,
        "torch": str(torch.__version__),  # TorchVersion is not a plain str
        "lightning": str(lightning.__version__),
        "numpy": str(np.__version__),
    }
