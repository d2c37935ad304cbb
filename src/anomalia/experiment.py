"""One experiment end to end: data, protocol, training, evaluation, and the run directory.

Layer: above reporting, below the CLI (which only parses arguments and calls these functions).

Run directory ``<output_dir>/<method>/<dataset>/class<k>/<name or timestamp>/``::

    config.yaml      resolved RunConfig (loads back with load_run_config)
    run.json         status, versions, data source, split sizes, timings
    split.npz        the exact train/validation/test indices
    model.pt         detector weights + constructor arguments + threshold (no pickled objects)
    checkpoints/     Lightning checkpoints (last.ckpt) for resuming
    logs/metrics.csv per-epoch training and validation losses
    metrics.json     test metrics
    scores.csv       test_index, true_class, label, score
    plots/           roc.png, score_histogram.png, reconstructions.png
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from anomalia.config import RunConfig, dump_yaml, from_dict, load_yaml, to_dict
from anomalia.data import ImageData, Split, load_dataset, make_split
from anomalia.detector import Detector
from anomalia.errors import ConfigError, DataError
from anomalia.evaluation import evaluate_scores
from anomalia.models import get_model_config
from anomalia.reporting import (
    reconstruction_grid_figure,
    roc_figure,
    save_figure,
    score_histogram_figure,
)
from anomalia.training.trainer import CHECKPOINT_DIR, LOG_DIR
from anomalia.utils import atomic_open, versions, write_json


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    config: RunConfig
    metrics: dict[str, Any]


def resolve_config(config: RunConfig) -> RunConfig:
    """Fill in the method's model defaults and validate every section."""
    model_cfg = from_dict(get_model_config(config.method), config.model, prefix="model.")
    resolved = from_dict(RunConfig, {**to_dict(config), "model": to_dict(model_cfg)})
    Detector(resolved.method, **resolved.model, **to_dict(resolved.train)).resolved_config()
    return resolved


def load_run_config(path: str | Path) -> RunConfig:
    """Read a RunConfig from YAML (unknown keys and wrong types are errors)."""
    return from_dict(RunConfig, load_yaml(path))


def new_run_dir(config: RunConfig) -> Path:
    """``<output_dir>/<method>/<dataset>/class<k>/<name or UTC timestamp>``, created empty."""
    parent = (
        Path(config.output_dir)
        / config.method
        / config.data.dataset
        / f"class{config.data.normal_class}"
    )
    if config.name:
        run_dir = parent / config.name
        if (run_dir / "metrics.json").exists() or (run_dir / "run.json").exists():
            raise ConfigError(
                f"run directory {run_dir} already holds a run; choose another --name or remove it"
            )
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        run_dir, n = parent / stamp, 1
        while run_dir.exists():
            run_dir, n = parent / f"{stamp}-{n}", n + 1
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def prepare_data(config: RunConfig) -> tuple[ImageData, Split]:
    """Load the dataset and build the protocol's split."""
    data = load_dataset(config.data.dataset, config.data.data_dir, config.data.download)
    split = make_split(
        data.train_labels,
        data.test_labels,
        normal_class=config.data.normal_class,
        anomaly_ratio=config.data.anomaly_ratio,
        anomaly_classes=config.data.anomaly_classes,
        n_known_anomaly_classes=config.data.n_known_anomaly_classes,
        pollution=config.data.pollution,
        val_fraction=config.data.val_fraction,
        seed=config.train.seed,
        n_classes=data.n_classes,
    )
    return data, split


def write_scores(path: Path, data: ImageData, split: Split, scores: np.ndarray) -> None:
    with atomic_open(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(["test_index", "true_class", "label", "score"])
        for i, label, score in zip(split.test_indices, split.test_labels, scores, strict=True):
            writer.writerow([int(i), int(data.test_labels[i]), int(label), f"{score:.9g}"])


def read_scores(path: Path) -> np.ndarray:
    with path.open() as handle:
        return np.array([float(row["score"]) for row in csv.DictReader(handle)])


def write_plots(
    run_dir: Path,
    detector: Detector,
    data: ImageData,
    split: Split,
    scores: np.ndarray,
    threshold: float,
    title: str,
    n_images: int = 8,
) -> None:
    """ROC curve, score histograms and reconstruction grids into ``run_dir/plots``."""
    plots = run_dir / "plots"
    save_figure(roc_figure(split.test_labels, scores, title=f"ROC: {title}"), plots / "roc.png")
    save_figure(
        score_histogram_figure(split.test_labels, scores, threshold, title=title),
        plots / "score_histogram.png",
    )
    rng = np.random.default_rng(0)
    groups = []
    for name, label in (("normal", 0), ("anomaly", 1)):
        picked = rng.choice(np.flatnonzero(split.test_labels == label), n_images, replace=False)
        images = data.test_images[split.test_indices[picked]]
        groups.append((name, images / 255.0, detector.reconstruct(images), scores[picked]))
    save_figure(reconstruction_grid_figure(groups), plots / "reconstructions.png")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: Set by the leading process so the processes Lightning's DDP launcher starts (which re-run
#: the same command) train into the same run directory instead of making their own.
RUN_DIR_ENV = "ANOMALIA_RUN_DIR"


def is_leader_process() -> bool:
    """False in the extra processes of a multi-process (DDP) launch."""
    rank = os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))
    return rank == "0"


def run_experiment(config: RunConfig) -> RunResult:
    """Train, evaluate and write a complete run directory; returns where and what.

    Under DDP the other processes only train: rank 0 creates the run directory, scores the
    test set and writes every file (its weights equal every other rank's after training, so the
    metrics are those of a single-process evaluation).
    """
    config = resolve_config(config)
    data, split = prepare_data(config)
    if not is_leader_process():
        run_dir = Path(os.environ.get(RUN_DIR_ENV, Path(config.output_dir) / ".ddp-worker"))
        return _train_and_evaluate(config, run_dir, data, split, info=None)
    run_dir = new_run_dir(config)
    os.environ[RUN_DIR_ENV] = str(run_dir)
    header = "".join(f"# {k}: {v}\n" for k, v in versions().items())
    with atomic_open(run_dir / "config.yaml") as handle:
        handle.write(header + dump_yaml(to_dict(config)))
    split.save(run_dir / "split.npz")
    info: dict[str, Any] = {
        "status": "running",
        "started": _now(),
        "versions": versions(),
        "seed": config.train.seed,
        "data_source": data.source,
        "class_names": list(data.class_names),
        "known_anomaly_classes": list(split.known_anomaly_classes),
        "split": split.counts(),
    }
    return _train_and_evaluate(config, run_dir, data, split, info)


def resume_experiment(run_dir: str | Path) -> RunResult:
    """Continue an interrupted run from its last checkpoint, in the same directory.

    The run's saved config and split are used as they are, so the finished run equals an
    uninterrupted one with the same seed (on CPU, bit for bit).
    """
    run_dir = Path(run_dir)
    for needed in ("config.yaml", "split.npz", "run.json"):
        if not (run_dir / needed).is_file():
            raise DataError(f"cannot resume {run_dir}: {needed} is missing (not a run directory)")
    info = json.loads((run_dir / "run.json").read_text())
    if info.get("status") == "finished":
        raise ConfigError(f"{run_dir} already finished; nothing to resume")
    config = resolve_config(load_run_config(run_dir / "config.yaml"))
    data, _ = prepare_data(config)
    split = Split.load(run_dir / "split.npz")
    checkpoint = run_dir / CHECKPOINT_DIR / "last.ckpt"
    ckpt_path = checkpoint if checkpoint.is_file() else None
    if not is_leader_process():
        return _train_and_evaluate(config, run_dir, data, split, None, ckpt_path)
    info = {**info, "status": "running", "resumed": _now()}
    info.pop("error", None)
    # Lightning's CSV logger deletes an existing metrics.csv; keep the epochs logged so far.
    log, stash = run_dir / LOG_DIR / "metrics.csv", run_dir / LOG_DIR / "metrics.before-resume.csv"
    _write_rows(stash, _read_rows(stash) + _read_rows(log))
    log.unlink(missing_ok=True)
    result = _train_and_evaluate(config, run_dir, data, split, info, ckpt_path)
    new_rows = _read_rows(log)
    first_new_epoch = min((int(r["epoch"]) for r in new_rows), default=0)
    old_rows = [r for r in _read_rows(stash) if int(r["epoch"]) < first_new_epoch]
    _write_rows(log, old_rows + new_rows)
    stash.unlink()
    return result


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _write_rows(path: Path, rows: list[dict[str, str]]) -> None:
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_open(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _train_and_evaluate(
    config: RunConfig,
    run_dir: Path,
    data: ImageData,
    split: Split,
    info: dict[str, Any] | None,
    ckpt_path: Path | None = None,
) -> RunResult:
    """Fit, then (in the leading process only, ``info`` given) score and write the results."""
    if info is not None:
        write_json(run_dir / "run.json", info)
    detector = Detector(config.method, work_dir=run_dir, **config.model, **to_dict(config.train))
    start = time.perf_counter()
    try:
        detector.fit(
            data.train_images[split.train_indices],
            split.train_targets,
            val_images=data.train_images[split.val_indices] if len(split.val_indices) else None,
            val_labels=split.val_targets if len(split.val_indices) else None,
            ckpt_path=ckpt_path,
        )
    except BaseException as err:
        # The last epoch's checkpoint stays in checkpoints/ for --resume.
        if info is not None:
            write_json(run_dir / "run.json", {**info, "status": "failed", "error": str(err)})
        raise
    train_seconds = time.perf_counter() - start
    if info is None or detector.global_rank_ != 0:
        return RunResult(run_dir=run_dir, config=config, metrics={})
    detector.save(run_dir / "model.pt")

    start = time.perf_counter()
    test_images = data.test_images[split.test_indices]
    scores = detector.decision_function(test_images)
    score_seconds = time.perf_counter() - start
    metrics = evaluate_scores(
        split.test_labels, scores, detector.threshold_, classes=data.test_labels[split.test_indices]
    )
    metrics.update(
        threshold_rule=detector.threshold_rule_,
        train_seconds=round(train_seconds, 2),
        score_seconds=round(score_seconds, 2),
        normal_class=config.data.normal_class,
        method=config.method,
    )
    write_scores(run_dir / "scores.csv", data, split, scores)
    write_json(run_dir / "metrics.json", metrics)
    if config.plots:
        class_name = data.class_names[config.data.normal_class]
        title = f"{config.method}, normal class {config.data.normal_class} ({class_name})"
        write_plots(run_dir, detector, data, split, scores, detector.threshold_, title)
    finished = {"status": "finished", "finished": _now(), "world_size": detector.world_size_}
    write_json(run_dir / "run.json", {**info, **finished})
    return RunResult(run_dir=run_dir, config=config, metrics=metrics)


def evaluate_run(run_dir: str | Path, accelerator: str = "auto") -> tuple[dict[str, Any], float]:
    """Re-score a saved run's test set from ``model.pt`` and its saved split.

    Returns:
        (metrics, largest absolute difference from the scores saved in ``scores.csv``).
    """
    run_dir = Path(run_dir)
    for needed in ("config.yaml", "split.npz", "model.pt"):
        if not (run_dir / needed).is_file():
            raise DataError(f"{run_dir} is not a finished run directory: {needed} is missing")
    config = load_run_config(run_dir / "config.yaml")
    data, _ = prepare_data(config)
    split = Split.load(run_dir / "split.npz")
    detector = Detector.load(run_dir / "model.pt", accelerator=accelerator)
    scores = detector.decision_function(data.test_images[split.test_indices])
    metrics = evaluate_scores(
        split.test_labels, scores, detector.threshold_, classes=data.test_labels[split.test_indices]
    )
    diff = float("nan")
    if (run_dir / "scores.csv").is_file():
        saved = read_scores(run_dir / "scores.csv")
        diff = float(np.abs(saved - scores).max()) if len(saved) == len(scores) else float("inf")
    return metrics, diff


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """The ``metrics.json`` of a run."""
    metrics: dict[str, Any] = json.loads((Path(run_dir) / "metrics.json").read_text())
    return metrics
