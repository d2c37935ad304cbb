"""``anomalia benchmark GRID --executor ray``: every cell of a grid as a Ray task.

The driver (the machine that runs the command) keeps all the bookkeeping it has with the local
executor (:class:`anomalia.benchmark.GridRun`: ``results.csv`` gains a row as each cell finishes,
a second run resumes, progress with the time left); Ray only decides where each cell trains.

Each cell asks the cluster for the grid's ``resources`` (``method_resources`` per method) and
trains in a Ray worker process with that many torch threads. Where the run directory lives:

* **shared storage** (every node sees the driver's ``output_dir``, as on a cluster with a shared
  filesystem): the cell trains straight into its run directory, so a cell whose node dies is
  retried on another node from its last checkpoint, and its log is ``cells/<cell>.log``.
* **no shared storage**: the cell trains in a temporary directory on its node, and the finished
  run directory (without its checkpoints, which only an unfinished run needs) is sent back to the
  driver, which unpacks it where the local executor would have written it. A cell whose node
  dies is trained again from the start.

``--storage auto`` (the default) tells the two apart per cell: the driver writes a file with a
random token into the benchmark directory, and a cell that can read it back is on shared storage.

A cell whose worker or node dies is retried by Ray (``max_retries``); one that still fails, or
that raises an error (bad data, a diverging loss), is reported as failed with its log, and the
other cells go on. Running the same command again retries only the failed cells.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import secrets
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from anomalia.benchmark import (
    BenchmarkConfig,
    Cell,
    GridRun,
    cell_log,
    cell_run_dir,
    train_cell,
)
from anomalia.cluster import ray_session
from anomalia.config import RunConfig, from_dict, to_dict
from anomalia.errors import ConfigError
from anomalia.rundir import RunDir

STORAGE_MODES = ("auto", "shared", "send-back")
MARKER_NAME = ".ray-storage-check"


def run_benchmark_on_ray(
    config: BenchmarkConfig,
    address: str | None = None,
    storage: str = "auto",
    max_retries: int = 2,
    echo: Callable[[str], None] = print,
) -> tuple[list[dict[str, str]], list[str]]:
    """Run every unfinished cell of ``config`` as a Ray task.

    Args:
        config: the grid.
        address: the Ray cluster (``auto``: the one this machine joined with ``ray start``);
            None starts a Ray instance on this machine only.
        storage: ``auto``, ``shared`` (every node must see ``output_dir``; an error otherwise)
            or ``send-back`` (finished run directories are always sent back to the driver).
        max_retries: how often a cell whose worker or node died is started again.
        echo: where progress lines go.

    Returns:
        (the rows of ``results.csv`` in grid order, the keys of cells that failed).
    """
    if storage not in STORAGE_MODES:
        raise ConfigError(f"--storage must be one of {', '.join(STORAGE_MODES)}, got {storage!r}")
    if max_retries < 0:
        raise ConfigError(f"--max-retries must be at least 0, got {max_retries}")
    with ray_session(address, "anomalia benchmark --executor ray") as ray:
        cpus = ray.cluster_resources().get("CPU", 1.0)
        per_cell = max(config.cell_resources(m)["cpus"] for m in config.methods)
        parallel = max(1, int(cpus // per_cell))
        grid_run = GridRun(
            config, parallel, f"Ray ({cpus:g} CPUs, up to {parallel} cells at once)", echo
        )
        task = ray.remote(train_cell_task)
        with grid_run, _storage_marker(config.directory) as marker:
            pending: dict[Any, Cell] = {}
            for cell in grid_run.todo:
                try:
                    run, run_dir, needs_training = grid_run.prepare(cell)
                    if not needs_training:  # trained before its row was written
                        grid_run.finished(cell, 0.0, trained=False)
                        continue
                except Exception as err:  # one bad cell must not stop the grid
                    grid_run.failed(cell, err)
                    continue
                wanted = config.cell_resources(cell.method)
                ref = task.options(
                    num_cpus=wanted["cpus"],
                    num_gpus=wanted["gpus"],
                    max_retries=max_retries,
                    retry_exceptions=False,  # an error in the cell would only recur
                    name=cell.key,
                ).remote(
                    to_dict(run),
                    str(run_dir.path),
                    str(cell_log(config, cell)),
                    marker,
                    storage,
                    max(1, int(wanted["cpus"])),
                )
                pending[ref] = cell
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                cell = pending.pop(ref)
                grid_run.running = min(parallel, len(pending)) + 1  # the others, and this one
                try:
                    outcome = ray.get(ref)
                except ray.exceptions.RayError as err:  # the worker or its node died every time
                    grid_run.failed(
                        cell,
                        f"its worker died {max_retries + 1} time(s) ({type(err).__name__}); "
                        f"log so far (shared storage only): {cell_log(config, cell)}",
                    )
                    continue
                try:
                    _take_outcome(grid_run, config, cell, outcome)
                except Exception as err:  # e.g. a sent-back run that cannot be unpacked
                    grid_run.failed(cell, err)
            return grid_run.close()


def _take_outcome(
    grid_run: GridRun, config: BenchmarkConfig, cell: Cell, outcome: dict[str, Any]
) -> None:
    """Keep a finished task's log (and run directory, when sent back), then record the cell."""
    log = cell_log(config, cell)
    if outcome["log"] is not None:  # sent back: the log was written on the worker's disk
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(outcome["log"])
    if outcome["error"] is not None:
        grid_run.failed(cell, f"{outcome['error']} (on {outcome['node']}; log: {log})")
        return
    if outcome["archive"] is not None:
        run = cell_run_dir(config, cell)
        _unpack(outcome["archive"], run)
        # The run's config names the worker's temporary output_dir; name the driver's.
        driver_dir = str(config.directory / "runs")
        run.write_config(dataclasses.replace(run.read_config(), output_dir=driver_dir))
    grid_run.finished(cell, outcome["seconds"], trained=True)


# ------------------------------------------------------------------------- on the worker
def train_cell_task(
    run_data: dict[str, Any],
    run_dir: str,
    log_path: str,
    marker: tuple[str, str],
    storage: str,
    threads: int,
) -> dict[str, Any]:
    """One cell, in a Ray worker: train it where its run directory can live, capture its
    console output, and return what the driver needs.

    Errors in the cell are returned, not raised, so the driver can report them with the log;
    a worker that dies raises on the driver instead, and Ray retries the task.

    Returns:
        ``{"error": str | None, "seconds": float, "node": str, "log": str | None,
        "archive": bytes | None}``: ``log`` and ``archive`` (the packed run directory) are set
        when the run directory was not on shared storage.
    """
    import socket

    import torch

    torch.set_num_threads(threads)
    node = socket.gethostname()
    shared = _sees_marker(marker)
    if storage == "shared" and not shared:
        return {
            "error": f"output_dir {Path(marker[0]).parent.parent} is not shared with node "
            f"{node}; run with --storage send-back (or auto)",
            "seconds": 0.0, "node": node, "log": None, "archive": None,
        }  # fmt: skip
    run = from_dict(RunConfig, run_data)
    # one line per epoch into the cell's log (its stdout is a file, so never a progress bar)
    run = dataclasses.replace(run, train=dataclasses.replace(run.train, progress_bar=True))
    start = time.perf_counter()
    if shared and storage != "send-back":
        error = _train_logged(run, RunDir(run_dir), Path(log_path))
        return {"error": error, "seconds": time.perf_counter() - start, "node": node,
                "log": None, "archive": None}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="anomalia-cell-") as tmp:
        local = dataclasses.replace(run, output_dir=str(Path(tmp) / "runs"))
        local_dir = RunDir(RunDir.parent_for(local) / str(local.name))
        log = Path(tmp) / "cell.log"
        error = _train_logged(local, local_dir, log)
        seconds = time.perf_counter() - start
        archive = _pack(local_dir) if error is None else None
        return {"error": error, "seconds": seconds, "node": node,
                "log": log.read_text(errors="replace"), "archive": archive}  # fmt: skip


def _train_logged(run: RunConfig, run_dir: RunDir, log: Path) -> str | None:
    """Train one cell with its console output in ``log``; the error's text if it failed."""
    import socket
    import traceback

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as handle, _output_to(handle):
        start = time.perf_counter()
        print(f"{run_dir}: started on {socket.gethostname()} at {time.ctime()}", flush=True)
        try:
            train_cell(run, run_dir)
        except Exception as err:
            traceback.print_exc(file=handle)
            return f"{type(err).__name__}: {err}"
        print(f"finished in {time.perf_counter() - start:.1f} s", flush=True)
    return None


@contextlib.contextmanager
def _output_to(handle: io.TextIOBase) -> Iterator[None]:
    with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        yield


# ------------------------------------------------------------------------------ storage
@contextlib.contextmanager
def _storage_marker(directory: Path) -> Iterator[tuple[str, str]]:
    """A file only the driver's filesystem holds, as (path, token), removed afterwards."""
    token = secrets.token_hex(16)
    path = directory / MARKER_NAME
    path.write_text(token)
    try:
        yield str(path.resolve()), token
    finally:
        path.unlink(missing_ok=True)


def _sees_marker(marker: tuple[str, str]) -> bool:
    path, token = marker
    try:
        return Path(path).read_text() == token
    except OSError:
        return False


def _pack(run_dir: RunDir) -> bytes:
    """The run directory as an uncompressed tar (weights barely compress), checkpoints left out."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(
            run_dir.path,
            arcname=".",
            filter=lambda info: None if info.name.startswith(f"./{RunDir.CHECKPOINTS}") else info,
        )
    return buffer.getvalue()


def _unpack(archive: bytes, run_dir: RunDir) -> None:
    """Put a sent-back run directory in place of whatever unfinished run was there."""
    incoming = run_dir.path.with_name(run_dir.path.name + ".incoming")
    shutil.rmtree(incoming, ignore_errors=True)
    incoming.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        if hasattr(tarfile, "data_filter"):  # refuses links and paths out of the directory
            tar.extractall(incoming, filter="data")
        else:  # Python < 3.10.12: our own archive from our own worker
            tar.extractall(incoming)
    shutil.rmtree(run_dir.path, ignore_errors=True)
    incoming.rename(run_dir.path)
