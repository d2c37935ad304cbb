"""``anomalia benchmark``: a grid of experiments, resumable, with summary tables and plots.

Layer: beside :mod:`anomalia.experiment` (it runs experiments), below the CLI.

The grid is methods x anomaly ratios (gamma_l) x known anomaly classes (k_l) x seeds x normal
classes. Each cell is an ordinary run with its own run directory under
``<output_dir>/<name>/runs/``. ``results.csv`` gains a row as each cell finishes (one complete
line, flushed and synced), so an interruption loses no finished cell; running the same command
again skips finished cells, resumes a cell whose run was cut short from its checkpoint, and at the
end rewrites ``results.csv`` in grid order, so an interrupted-and-resumed benchmark ends with the
same file as an uninterrupted one. Timings go to ``timings.csv``. One invocation at a time runs
a grid: a second one on the same ``<output_dir>/<name>`` is refused while the first runs.
"""

from __future__ import annotations

import csv
import itertools
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from anomalia.config import (
    RunConfig,
    Validated,
    dump_yaml,
    from_dict,
    load_yaml,
    merge,
    param,
    to_dict,
)
from anomalia.errors import ConfigError, DataError
from anomalia.experiment import resolve_config, resume_experiment, run_experiment
from anomalia.methods import get_method
from anomalia.reporting import save_figure
from anomalia.reporting.summary import (
    method_stats,
    per_class_figure,
    ratio_figure,
    read_result_rows,
    summary_markdown,
)
from anomalia.rundir import RunDir
from anomalia.utils import atomic_open, write_csv

#: Columns every row has; files written before localisation have exactly these.
REQUIRED_FIELDS = [
    "cell", "method", "dataset", "normal_class", "anomaly_ratio", "n_known_anomaly_classes",
    "seed", "known_anomaly_classes", "auroc", "auprc", "mean_score_normal",
    "mean_score_anomaly", "f1", "run_dir",
]  # fmt: skip
#: ... and the pixel metrics, empty where the test set has no masks or the method no maps.
RESULT_FIELDS = [*REQUIRED_FIELDS, "pixel_auroc", "aupro"]


@dataclass
class BenchmarkConfig(Validated):
    """A benchmark grid: methods x gamma_l x k_l x seeds x normal classes."""

    name: str = param(
        "benchmark", help="sub-directory of output_dir holding everything the benchmark writes"
    )
    methods: list[str] = param(factory=lambda: ["autoencoder"], help="registered method names")
    normal_classes: list[int] = param(
        factory=lambda: list(range(10)), ge=0, help="classes taken in turn as normal"
    )
    seeds: list[int] = param(
        factory=lambda: [0], ge=0, help="seeds; each changes the split, the weights and batches"
    )
    method_seeds: dict[str, list[int]] = param(
        factory=dict, help="per-method seed lists replacing seeds (fewer for a slow method)"
    )
    anomaly_ratios: list[float] = param(factory=lambda: [0.05], ge=0, lt=1, help="gamma_l values")
    n_known_anomaly_classes: list[int | None] = param(
        factory=lambda: [None],
        ge=1,
        help="k_l values; null = labelled anomalies from every other class",
    )
    base: dict[str, Any] = param(
        factory=dict, help="RunConfig keys shared by every cell (data, train, model, plots)"
    )
    method_overrides: dict[str, Any] = param(
        factory=dict, help="per-method RunConfig keys merged over base"
    )
    output_dir: str = param("runs/benchmarks", help="root directory")
    resources: dict[str, float] = param(
        factory=lambda: {"cpus": 1, "gpus": 0},
        help="what one cell asks of a Ray node (--executor ray): cpus, gpus",
    )
    method_resources: dict[str, dict[str, float]] = param(
        factory=dict, help="per-method resources over `resources`, e.g. {dual_gan: {cpus: 2}}"
    )

    def validate(self) -> None:
        for name in ("methods", "normal_classes", "seeds", "anomaly_ratios"):
            if not getattr(self, name):
                raise ConfigError(f"benchmark key {name} must list at least one value")
        if not self.n_known_anomaly_classes:
            raise ConfigError("benchmark key n_known_anomaly_classes must list at least one value")
        for method in self.methods:
            get_method(method)
        for method, seeds in self.method_seeds.items():
            if method not in self.methods or not seeds:
                raise ConfigError(
                    f"method_seeds.{method} must list seeds of a method in `methods` {self.methods}"
                )
        for method in self.method_resources:
            if method not in self.methods:
                raise ConfigError(
                    f"method_resources.{method} names no method in `methods` {self.methods}"
                )
        for method in self.methods:
            self.cell_resources(method)

    def cell_resources(self, method: str) -> dict[str, float]:
        """``{"cpus": ..., "gpus": ...}`` one cell of ``method`` asks of a Ray node."""
        where = f"method_resources.{method}" if method in self.method_resources else "resources"
        return check_resources({**self.resources, **self.method_resources.get(method, {})}, where)

    @property
    def directory(self) -> Path:
        return Path(self.output_dir) / self.name


def check_resources(resources: dict[str, Any], where: str) -> dict[str, float]:
    """``{"cpus": ..., "gpus": ...}`` from a ``resources`` mapping (defaults 1 and 0), or a
    :class:`ConfigError` naming ``where`` for an unknown key or a value out of range."""
    unknown = sorted(set(resources) - {"cpus", "gpus"})
    if unknown:
        raise ConfigError(f"{where} has unknown key(s) {unknown}; use cpus and gpus")
    cpus, gpus = resources.get("cpus", 1), resources.get("gpus", 0)
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (cpus, gpus))
    if not numbers or cpus <= 0 or gpus < 0:
        raise ConfigError(f"{where} must ask for cpus > 0 and gpus >= 0, got {resources!r}")
    return {"cpus": float(cpus), "gpus": float(gpus)}


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    method: str
    anomaly_ratio: float
    n_known_anomaly_classes: int | None
    seed: int
    normal_class: int

    @property
    def name(self) -> str:
        known = "all" if self.n_known_anomaly_classes is None else self.n_known_anomaly_classes
        return f"g{self.anomaly_ratio:g}-k{known}-seed{self.seed}"

    @property
    def key(self) -> str:
        return f"{self.method}/class{self.normal_class}/{self.name}"


def load_benchmark_config(path: str | Path) -> BenchmarkConfig:
    """Read and validate a benchmark YAML file (unknown keys are errors)."""
    config = from_dict(BenchmarkConfig, load_yaml(path))
    checked: set[str] = set()
    for cell in cells(config):  # fail now, not hours into the grid (a few ms a cell)
        run = cell_config(config, cell)
        key = dump_yaml({**to_dict(run), "name": None})
        if key not in checked:
            resolve_config(run)
            checked.add(key)
    return config


def cells(config: BenchmarkConfig) -> list[Cell]:
    """Every cell, in grid order. Cells a method cannot run (a method that learns from
    labelled anomalies at gamma_l = 0) are left out rather than failed."""
    grid: list[Cell] = []
    for method in config.methods:
        one_class_ok = not get_method(method).needs_labelled_anomalies
        values = itertools.product(
            [r for r in config.anomaly_ratios if r > 0 or one_class_ok],
            config.n_known_anomaly_classes,
            config.method_seeds.get(method, config.seeds),
            config.normal_classes,
        )
        grid += [Cell(method, *v) for v in values]
    return grid


def cell_config(config: BenchmarkConfig, cell: Cell) -> RunConfig:
    """The RunConfig of one cell."""
    data = merge(config.base, config.method_overrides.get(cell.method, {}))
    data = merge(data, {
        "method": cell.method,
        "data": {"normal_class": cell.normal_class, "anomaly_ratio": cell.anomaly_ratio,
                 "n_known_anomaly_classes": cell.n_known_anomaly_classes},
        "train": {"seed": cell.seed, "progress_bar": False},
        "output_dir": str(config.directory / "runs"),
        "name": cell.name,
    })  # fmt: skip
    return from_dict(RunConfig, data)


def cell_run_dir(config: BenchmarkConfig, cell: Cell) -> RunDir:
    return RunDir(RunDir.parent_for(cell_config(config, cell)) / cell.name)


def read_results(path: Path) -> list[dict[str, str]]:
    """Rows of ``results.csv`` with every column (the pixel metrics empty in rows written
    before them); a torn last line (a kill mid-write) is dropped."""
    rows = read_result_rows(path, REQUIRED_FIELDS)
    return [{**dict.fromkeys(RESULT_FIELDS, ""), **r} for r in rows]


def merge_results(config: BenchmarkConfig, paths: list[str | Path]) -> tuple[int, int]:
    """Add the rows of other machines' ``results.csv`` files to this benchmark's, so one
    summary covers a grid that several machines shared out.

    Returns:
        (rows added, rows skipped because this benchmark already has a row for that cell).
    """
    target = config.directory / "results.csv"
    rows = {r["cell"]: r for r in read_results(target)}
    added = skipped = 0
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"{path}: no such file; pass the results.csv of another machine")
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
        if header not in (RESULT_FIELDS, REQUIRED_FIELDS):
            raise DataError(
                f"{path} is not a results.csv written by `anomalia benchmark` (its columns are "
                f"{','.join(header) or 'missing'})"
            )
        for row in read_results(path):
            if row["cell"] in rows:
                skipped += 1
            else:
                rows[row["cell"]] = row
                added += 1
    config.directory.mkdir(parents=True, exist_ok=True)
    write_csv(target, list(rows.values()), RESULT_FIELDS)
    return added, skipped


def _row(cell: Cell, run_dir: Path, metrics: dict[str, Any], known: list[int]) -> dict[str, Any]:
    return {
        "cell": cell.key, "method": cell.method, "dataset": run_dir.parts[-3],
        "normal_class": cell.normal_class, "anomaly_ratio": f"{cell.anomaly_ratio:g}",
        "n_known_anomaly_classes": "" if cell.n_known_anomaly_classes is None
        else cell.n_known_anomaly_classes,
        "seed": cell.seed, "known_anomaly_classes": " ".join(str(c) for c in known),
        "auroc": f"{metrics['auroc']:.6f}", "auprc": f"{metrics['auprc']:.6f}",
        "mean_score_normal": f"{metrics['mean_score_normal']:.6g}",
        "mean_score_anomaly": f"{metrics['mean_score_anomaly']:.6g}",
        "f1": f"{metrics['f1']:.6f}", "run_dir": run_dir.as_posix(),
        **{k: f"{metrics[k]:.6f}" if k in metrics else "" for k in ("pixel_auroc", "aupro")},
    }  # fmt: skip


class _Appender:
    """Appends complete CSV lines to a file, one writer at a time, synced to disk."""

    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path, self.fields, self.lock = path, fields, threading.Lock()

    def append(self, row: dict[str, Any]) -> None:
        with self.lock:
            new = not self.path.is_file() or self.path.stat().st_size == 0
            line = ""
            if new:
                line = ",".join(self.fields) + "\n"
            with self.path.open("a", newline="") as handle:
                buffer = _csv_line(self.fields, row)
                handle.write(line + buffer)  # one write: a kill leaves at most a torn last line
                handle.flush()
                os.fsync(handle.fileno())


def _csv_line(fields: list[str], row: dict[str, Any]) -> str:
    import io

    out = io.StringIO()
    csv.DictWriter(out, fieldnames=fields, lineterminator="\n").writerow(row)
    return out.getvalue()


#: Keys that may differ between a cell's config and the run found in its directory.
_INCIDENTAL = {"output_dir", "name", "train.progress_bar"}


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def check_same_settings(run: RunConfig, run_dir: RunDir) -> None:
    """Refuse to reuse a run made with other settings than the grid now asks for.

    Without this, editing a grid between two invocations would silently mix results of the old
    and the new settings in one table.
    """
    want = _flat(to_dict(resolve_config(run)))
    have = _flat(to_dict(resolve_config(run_dir.read_config())))
    diff = sorted(k for k in want.keys() | have.keys()
                  if k not in _INCIDENTAL and want.get(k) != have.get(k))  # fmt: skip
    if diff:
        raise ConfigError(
            f"{run_dir} was run with other settings ({', '.join(diff)}) than the grid now "
            "asks for; restore the grid, or delete that run directory to run the cell anew"
        )


def train_cell(run: RunConfig, run_dir: RunDir) -> None:
    """Train one cell in this process: resume its run when one was started, else start it."""
    if run_dir.has(RunDir.INFO):
        resume_experiment(run_dir.path)
    else:
        run_experiment(run)


def cell_log(config: BenchmarkConfig, cell: Cell) -> Path:
    """Where a cell's console output goes when it runs away from the driver's console."""
    return config.directory / "cells" / f"{cell.key.replace('/', '_')}.log"


def _run_cell_subprocess(run: RunConfig, run_dir: RunDir, cell_file: Path, threads: int) -> None:
    cell_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(cell_file) as handle:
        handle.write(dump_yaml(to_dict(run)))
    args = ["--resume", str(run_dir)] if run_dir.has(RunDir.INFO) else ["--config", str(cell_file)]
    log = cell_file.with_suffix(".log")
    with log.open("w") as handle:
        code = subprocess.run(
            [sys.executable, "-m", "anomalia.cli", "train", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": str(threads)},
            check=False,
        ).returncode
    if code != 0:
        raise RuntimeError(f"exit code {code}; see {log}")


def _lock_grid(directory: Path) -> FileLock:
    """Hold ``directory/.lock``, or a :class:`ConfigError` when another process holds it (the
    operating system frees the lock when its holder ends, however it ends)."""
    lock = FileLock(directory / ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            f"another `anomalia benchmark` is running the grid in {directory} (it holds "
            f"{lock.lock_file}); wait for it to end, or give this grid another `name`. If no "
            "benchmark runs there (a crash on a shared disk without file locks), delete that file"
        ) from None
    return lock


class GridRun:
    """The driver's side of one ``anomalia benchmark`` invocation, whatever runs the cells:
    ``results.csv`` (a row appended as each cell finishes), ``timings.csv``, progress lines
    with an estimate of the time left, and the final rewrite in grid order.

    An executor enters it (``with GridRun(...) as grid_run``), calls :meth:`prepare` before it
    trains a cell, then :meth:`finished` or :meth:`failed` for it, and :meth:`close` at the end.
    From construction to exit it holds a lock on the grid's directory: two invocations of one
    grid would train the same cells into the same run directories, and one's final rewrite of
    ``results.csv`` could drop the rows the other appended meanwhile.

    Args:
        config: the grid.
        parallel: cells the executor runs at once (for the estimate of the time left).
        how: how the cells run, for the opening line (``"2 job(s)"``, ``"Ray, 4 at once"``).
        echo: where progress lines go.
    """

    def __init__(
        self,
        config: BenchmarkConfig,
        parallel: int,
        how: str,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.config, self.parallel, self.echo = config, max(parallel, 1), echo
        self.directory = config.directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._hold = _lock_grid(self.directory)
        try:
            self._open(how)
        except BaseException:
            self._hold.release()
            raise

    def __enter__(self) -> GridRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self._hold.release()

    def _open(self, how: str) -> None:
        with atomic_open(self.directory / "benchmark.yaml") as handle:
            handle.write(dump_yaml(to_dict(self.config)))
        self.results_path = self.directory / "results.csv"
        finished = {r["cell"]: r for r in read_results(self.results_path)}
        write_csv(self.results_path, list(finished.values()), RESULT_FIELDS)  # drops a torn line
        self._results = _Appender(self.results_path, RESULT_FIELDS)
        self._timings = _Appender(self.directory / "timings.csv", ["cell", "seconds"])
        self.grid = cells(self.config)
        self.todo = [c for c in self.grid if c.key not in finished]
        self.done = len(self.grid) - len(self.todo)
        self.running = 0
        self.failed_cells: list[str] = []
        self._seconds_by_method: dict[str, list[float]] = {}  # cells trained here
        self._left_by_method = Counter(c.method for c in self.todo)
        self._lock = threading.Lock()
        self.echo(
            f"benchmark {self.config.name}: {len(self.grid)} cells, {self.done} already finished, "
            f"{len(self.todo)} to run with {how}"
        )

    def prepare(self, cell: Cell) -> tuple[RunConfig, RunDir, bool]:
        """(the cell's config, its run directory, whether it still needs training).

        Raises:
            ConfigError: the run directory holds a run made with other settings.
        """
        run = cell_config(self.config, cell)
        run_dir = cell_run_dir(self.config, cell)
        if run_dir.has(RunDir.CONFIG):
            check_same_settings(run, run_dir)
        return run, run_dir, not run_dir.is_finished

    def started(self) -> None:
        with self._lock:
            self.running += 1

    def finished(self, cell: Cell, seconds: float, trained: bool) -> None:
        """Record a cell whose run directory (on the driver's disk) holds its results."""
        run_dir = cell_run_dir(self.config, cell)
        metrics = run_dir.read_metrics()
        known = [int(c) for c in run_dir.read_info().get("known_anomaly_classes", [])]
        self._results.append(_row(cell, run_dir.path.relative_to(self.directory), metrics, known))
        self._timings.append({"cell": cell.key, "seconds": f"{seconds:.1f}"})
        with self._lock:
            self.done += 1
            self.running = max(self.running - 1, 0)
            self._left_by_method[cell.method] -= 1
            if trained:
                self._seconds_by_method.setdefault(cell.method, []).append(seconds)
            left = len(self.grid) - self.done
            eta = estimate_seconds_left(
                self._seconds_by_method, self._left_by_method, self.parallel
            )
            self.echo(
                f"[{self.done}/{len(self.grid)} done, {self.running} running, {left} left, "
                f"~{eta / 60:.0f} min to go] {cell.key}: AUROC {metrics['auroc']:.4f} "
                f"({seconds:.0f} s)"
            )

    def failed(self, cell: Cell, error: object) -> None:
        with self._lock:
            self.running = max(self.running - 1, 0)
            self._left_by_method[cell.method] -= 1
            self.failed_cells.append(cell.key)
        self.echo(f"FAILED {cell.key}: {error}")

    def close(self) -> tuple[list[dict[str, str]], list[str]]:
        """Rewrite ``results.csv`` in grid order; returns (its rows, the failed cells' keys)."""
        rows = {r["cell"]: r for r in read_results(self.results_path)}
        in_grid = {c.key for c in self.grid}
        # Rows of cells outside this grid (merged from other machines) are kept, after the grid's.
        ordered = [rows[c.key] for c in self.grid if c.key in rows]
        ordered += [row for key, row in rows.items() if key not in in_grid]
        write_csv(self.results_path, ordered, RESULT_FIELDS)
        if self.failed_cells:
            self.echo(
                f"{len(self.failed_cells)} cell(s) failed; run the same command again to retry them"
            )
        return ordered, self.failed_cells


def run_benchmark(
    config: BenchmarkConfig,
    jobs: int = 1,
    threads: int | None = None,
    echo: Callable[[str], None] = print,
) -> tuple[list[dict[str, str]], list[str]]:
    """Run every unfinished cell on this machine (``--executor local``).

    Returns:
        (the rows of ``results.csv`` in grid order, the keys of cells that failed).

    Args:
        config: the grid.
        jobs: cells run at once; above 1 each runs in its own process.
        threads: torch threads per process when ``jobs`` > 1 (default: cores // jobs).
        echo: where progress lines go.
    """
    grid_run = GridRun(config, jobs, f"{jobs} job(s)", echo)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)

    def work(cell: Cell) -> None:
        grid_run.started()
        start = time.perf_counter()
        try:
            run, run_dir, trained = grid_run.prepare(cell)
            if trained and jobs == 1:
                train_cell(run, run_dir)
            elif trained:
                cell_file = cell_log(config, cell).with_suffix(".yaml")
                _run_cell_subprocess(run, run_dir, cell_file, threads)
            grid_run.finished(cell, time.perf_counter() - start, trained)
        except Exception as err:  # one bad cell must not stop the grid
            grid_run.failed(cell, err)

    with grid_run:
        if jobs == 1:
            for cell in grid_run.todo:
                work(cell)
        else:
            with ThreadPoolExecutor(jobs) as pool:
                list(pool.map(work, grid_run.todo))
        return grid_run.close()


def estimate_seconds_left(
    seconds_by_method: dict[str, list[float]], left_by_method: Counter[str], jobs: int
) -> float:
    """Cells left times each method's mean cell time so far (methods differ a hundredfold:
    knn 7 s, Deep SAD 8 min), divided by the parallel jobs. A method with no finished cell yet
    is assumed to take the mean of all timed cells."""
    timed = [t for times in seconds_by_method.values() for t in times]
    if not timed:
        return 0.0
    overall = sum(timed) / len(timed)
    total = 0.0
    for method, n_left in left_by_method.items():
        times = seconds_by_method.get(method)
        total += n_left * (sum(times) / len(times) if times else overall)
    return total / max(jobs, 1)


def write_summary(config: BenchmarkConfig) -> Path:
    """Write ``summary.md``, ``summary.csv`` and plots from ``results.csv``; returns summary.md."""
    directory = config.directory
    rows = read_results(directory / "results.csv")
    if not rows:
        raise ConfigError(f"{directory / 'results.csv'} holds no finished cell yet")
    dataset = rows[0]["dataset"]
    text = f"# Benchmark {config.name}\n\n" + summary_markdown(rows, dataset)
    with atomic_open(directory / "summary.md") as handle:
        handle.write(text)
    stats = method_stats(rows)
    write_csv(directory / "summary.csv", stats)
    plots = directory / "plots"
    for ratio, known in sorted(
        {(float(r["anomaly_ratio"]), r["n_known_anomaly_classes"]) for r in rows}
    ):
        subset = [
            r
            for r in rows
            if (float(r["anomaly_ratio"]), r["n_known_anomaly_classes"]) == (ratio, known)
        ]
        tag = f"g{ratio:g}-k{known or 'all'}"
        save_figure(
            per_class_figure(subset, title=f"AUROC per normal class ({tag})"),
            plots / f"per_class_{tag}.png",
        )
    if len({r["anomaly_ratio"] for r in rows}) > 1:
        save_figure(ratio_figure(rows), plots / "auroc_vs_gamma.png")
    return directory / "summary.md"
