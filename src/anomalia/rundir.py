"""The run directory: every file one ``anomalia train`` run writes, named in one place.

Layer: above the detector (it saves and loads one), below reporting, experiment, benchmark and
the CLI, which all reach a run's files through :class:`RunDir`.

``<output_dir>/<method>/<dataset>/class<k>/<name or timestamp>/``::

    config.yaml      resolved RunConfig, headed by the versions that wrote it
    run.json         status, versions, data source, split sizes, timings
    split.npz        the exact train/validation/test indices
    model.pt         detector weights + constructor arguments + threshold (no pickled objects)
    checkpoints/     Lightning checkpoints (last.ckpt) for resuming
    logs/metrics.csv per-epoch training and validation losses
    metrics.json     test metrics
    scores.csv       test_index, true_class, label, score
    plots/           roc.png, score_histogram.png, reconstructions.png
    skipped_images.txt  files left out by skip_bad_images (folder datasets), if any
    predictions.csv  written by `anomalia predict`; model.onnx by `anomalia export`;
    report.html      by `anomalia report`
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from anomalia.config import RunConfig, dump_yaml, to_dict
from anomalia.data import Split
from anomalia.detector import Detector
from anomalia.errors import ConfigError, DataError
from anomalia.training.trainer import CHECKPOINT_DIR, LOG_DIR
from anomalia.utils import atomic_open, versions, write_json


class RunDir:
    """One run directory: its paths, and reading and writing the files in it.

    Args:
        path: the directory (it need not exist yet; :meth:`create` makes a new one).
    """

    CONFIG = "config.yaml"
    INFO = "run.json"
    SPLIT = "split.npz"
    MODEL = "model.pt"
    METRICS = "metrics.json"
    SCORES = "scores.csv"
    PLOTS = "plots"
    SKIPPED = "skipped_images.txt"
    PREDICTIONS = "predictions.csv"
    ONNX = "model.onnx"
    REPORT = "report.html"
    CHECKPOINTS = CHECKPOINT_DIR
    LOGS = LOG_DIR

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __str__(self) -> str:
        return str(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ----------------------------------------------------------------------------- creation
    @staticmethod
    def parent_for(config: RunConfig) -> Path:
        """``<output_dir>/<method>/<dataset>/class<k>``: where runs of ``config`` go."""
        data = config.data
        return Path(config.output_dir) / config.method / data.dataset / f"class{data.normal_class}"

    @classmethod
    def create(cls, config: RunConfig) -> RunDir:
        """A new, empty run directory: ``config.name`` or a UTC timestamp.

        Raises:
            ConfigError: the named directory already holds a run.
        """
        parent = cls.parent_for(config)
        if config.name:
            run = cls(parent / config.name)
            if run.has(cls.METRICS) or run.has(cls.INFO):
                raise ConfigError(
                    f"run directory {run} already holds a run; choose another --name or remove it"
                )
        else:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
            run, n = cls(parent / stamp), 1
            while run.path.exists():
                run, n = cls(parent / f"{stamp}-{n}"), n + 1
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    # ------------------------------------------------------------------------------ checks
    def has(self, name: str) -> bool:
        return (self.path / name).is_file()

    def require(self, *names: str, what: str = "a finished run directory") -> RunDir:
        """Raise :class:`DataError` naming the first of ``names`` that is missing."""
        for name in names:
            if not self.has(name):
                raise DataError(f"{self.path} is not {what}: {name} is missing")
        return self

    @property
    def is_finished(self) -> bool:
        return self.has(self.METRICS)

    # ---------------------------------------------------------------------- config and info
    def write_config(self, config: RunConfig) -> None:
        header = "".join(f"# {k}: {v}\n" for k, v in versions().items())
        with atomic_open(self / self.CONFIG) as handle:
            handle.write(header + dump_yaml(to_dict(config)))

    def read_config(self) -> RunConfig:
        """The saved RunConfig (unknown keys and wrong types are errors)."""
        return RunConfig.from_yaml(self / self.CONFIG)

    def write_info(self, info: dict[str, Any]) -> None:
        write_json(self / self.INFO, info)

    def read_info(self) -> dict[str, Any]:
        """``run.json``, or an empty mapping when there is none."""
        if not self.has(self.INFO):
            return {}
        info: dict[str, Any] = json.loads((self / self.INFO).read_text())
        return info

    # ---------------------------------------------------------------------------- contents
    def write_split(self, split: Split) -> None:
        split.save(self / self.SPLIT)

    def read_split(self) -> Split:
        return Split.load(self / self.SPLIT)

    def write_skipped(self, files: Sequence[str]) -> None:
        with atomic_open(self / self.SKIPPED) as handle:
            handle.write("".join(f"{path}\n" for path in files))

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self / self.METRICS, metrics)

    def read_metrics(self) -> dict[str, Any]:
        self.require(self.METRICS)
        metrics: dict[str, Any] = json.loads((self / self.METRICS).read_text())
        return metrics

    def write_scores(
        self, test_indices: np.ndarray, classes: np.ndarray, labels: np.ndarray, scores: np.ndarray
    ) -> None:
        """One row per test image: its index in the test split, class, label and score."""
        with atomic_open(self / self.SCORES) as handle:
            writer = csv.writer(handle)
            writer.writerow(["test_index", "true_class", "label", "score"])
            for row in zip(test_indices, classes, labels, scores, strict=True):
                i, true_class, label, score = row
                writer.writerow([int(i), int(true_class), int(label), f"{score:.9g}"])

    def read_scores(self) -> np.ndarray:
        with (self / self.SCORES).open() as handle:
            return np.array([float(row["score"]) for row in csv.DictReader(handle)])

    def save_detector(self, detector: Detector) -> None:
        detector.save(self / self.MODEL)

    def load_detector(self, accelerator: str = "auto") -> Detector:
        self.require(self.MODEL)
        return Detector.load(self / self.MODEL, accelerator=accelerator)

    def plot_path(self, name: str) -> Path:
        return self.path / self.PLOTS / name

    def plot_files(self) -> list[Path]:
        return sorted((self.path / self.PLOTS).glob("*.png"))

    @property
    def checkpoint(self) -> Path | None:
        """The last Lightning checkpoint, if one was written."""
        path = self.path / self.CHECKPOINTS / "last.ckpt"
        return path if path.is_file() else None

    @property
    def log_file(self) -> Path:
        return self.path / self.LOGS / "metrics.csv"
