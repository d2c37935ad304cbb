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
    skipped_images.txt  files left out by --skip-bad-images (folder datasets), if any
    predictions.csv  written by `anomalia predict`; model.onnx by `anomalia export`;
    report.html      by `anomalia report`
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anomalia.config import RunConfig, dump_yaml, from_dict, load_yaml, to_dict
from anomalia.data import (
    IMAGE_SUFFIXES,
    ImageData,
    Split,
    expand_image_paths,
    iter_image_batches,
    load_dataset,
    make_split,
)
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
from anomalia.utils import atomic_open, versions, write_csv, write_json


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
    data = load_dataset(
        config.data.dataset,
        config.data.data_dir,
        config.data.download,
        image_size=config.data.image_size,
        skip_bad_images=config.data.skip_bad_images,
        test_fraction=config.data.test_fraction,
        anomaly_test_fraction=config.data.anomaly_test_fraction,
    )
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
    if not detector.can_reconstruct:
        return
    rng = np.random.default_rng(0)
    groups = []
    for name, label in (("normal", 0), ("anomaly", 1)):
        candidates = np.flatnonzero(split.test_labels == label)
        picked = rng.choice(candidates, min(n_images, len(candidates)), replace=False)
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
    if data.skipped_files:  # unreadable images left out (data.skip_bad_images)
        with atomic_open(run_dir / "skipped_images.txt") as handle:
            handle.write("".join(f"{path}\n" for path in data.skipped_files))
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
    write_csv(stash, _read_rows(stash) + _read_rows(log))
    log.unlink(missing_ok=True)
    result = _train_and_evaluate(config, run_dir, data, split, info, ckpt_path)
    new_rows = _read_rows(log)
    first_new_epoch = min((int(r["epoch"]) for r in new_rows), default=0)
    old_rows = [r for r in _read_rows(stash) if int(r["epoch"]) < first_new_epoch]
    write_csv(log, old_rows + new_rows)
    stash.unlink()
    return result


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


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


@dataclass
class PredictResult:
    """What :func:`predict_paths` scored and where it wrote the rows."""

    output: Path
    n_images: int
    n_anomalies: int
    threshold: float
    threshold_rule: str
    skipped: list[Path]


def predict_paths(
    run_dir: str | Path,
    paths: Sequence[str | Path],
    output: str | Path | None = None,
    batch_size: int = 64,
    *,
    skip_bad_images: bool = False,
    accelerator: str = "auto",
) -> PredictResult:
    """Score image files with a run's saved detector; write ``path,score,is_anomaly`` rows.

    Files are read in batches of ``batch_size`` and converted like the run's training data
    (the detector's channels, resized to its image size), so memory stays bounded whatever the
    number of files; rows are written as batches are scored. ``is_anomaly`` is 1 where the
    score exceeds the detector's ``threshold_`` (as :meth:`Detector.predict`).

    Args:
        run_dir: a finished run directory (holds ``model.pt``).
        paths: image files, directories (searched recursively for image file names) or glob
            patterns, see :func:`anomalia.data.folders.expand_image_paths`.
        output: CSV file to write (default ``RUN_DIR/predictions.csv``), replaced atomically.
        batch_size: images read and scored at a time.
        skip_bad_images: leave unreadable files out (listed in the result) instead of raising.
        accelerator: device to score on.

    Raises:
        DataError: no model in ``run_dir``, a path matches nothing, a file is not a readable
            image (without ``skip_bad_images``), or no image was found at all.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "model.pt").is_file():
        raise DataError(f"{run_dir} is not a finished run directory: model.pt is missing")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if not paths:
        raise DataError("no paths given: name image files, directories or glob patterns")
    detector = Detector.load(run_dir / "model.pt", accelerator=accelerator)
    output = Path(output) if output is not None else run_dir / "predictions.csv"
    skipped: list[Path] | None = [] if skip_bad_images else None
    n_images = n_anomalies = 0
    with atomic_open(output) as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "score", "is_anomaly"])
        for batch_paths, images in iter_image_batches(
            expand_image_paths(paths),
            mode="L" if detector.in_channels_ == 1 else "RGB",
            image_size=detector.image_size_,
            batch_size=batch_size,
            skipped=skipped,
        ):
            scores = detector.decision_function(images)
            flags = scores > detector.threshold_
            for path, score, flag in zip(batch_paths, scores, flags, strict=True):
                writer.writerow([str(path), f"{score:.9g}", int(flag)])
            n_images += len(scores)
            n_anomalies += int(flags.sum())
        if n_images == 0:  # leaves no output file behind
            raise DataError(
                f"no readable image among {', '.join(str(p) for p in paths)}; directories are "
                f"searched for {', '.join(sorted(IMAGE_SUFFIXES))} files"
            )
    return PredictResult(
        output=output,
        n_images=n_images,
        n_anomalies=n_anomalies,
        threshold=float(detector.threshold_),
        threshold_rule=str(detector.threshold_rule_),
        skipped=skipped or [],
    )


class _ScoreModule(torch.nn.Module):
    """Exposes a scoring network's ``score`` as ``forward``, the one method ONNX export traces."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.score(images)  # type: ignore[operator]


def export_onnx(
    run_dir: str | Path, output: str | Path | None = None, *, opset_version: int = 17
) -> Path:
    """Write a run's scoring network as ONNX (default ``RUN_DIR/model.onnx``).

    The graph maps ``images``, float32 (B, C, S, S) in [0, 1], to ``scores`` (B,), higher = more
    anomalous, as :meth:`Detector.decision_function` (to float32 precision). The batch size B is
    dynamic; the channels C and side S are the run's (convert and resize images as for
    training). The model's metadata holds ``threshold`` (flag an image when its score exceeds
    it), ``threshold_rule``, ``method``, ``in_channels`` and ``image_size``. Needs the
    ``export`` extra (``pip install 'anomalia[export]'``).

    Raises:
        DataError: ``run_dir`` holds no ``model.pt``.
        ConfigError: the ``onnx`` package is not installed.
    """
    import inspect
    import tempfile
    import warnings

    run_dir = Path(run_dir)
    if not (run_dir / "model.pt").is_file():
        raise DataError(f"{run_dir} is not a finished run directory: model.pt is missing")
    try:
        import onnx
    except ImportError:
        raise ConfigError(
            "ONNX export needs the onnx package: pip install 'anomalia[export]'"
        ) from None
    detector = Detector.load(run_dir / "model.pt", accelerator="cpu")
    output = Path(output) if output is not None else run_dir / "model.onnx"
    size = detector.image_size_
    example = torch.rand(2, detector.in_channels_, size, size)
    options: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        options["dynamo"] = False  # the TorchScript exporter: no extra dependency
    with tempfile.TemporaryDirectory() as scratch, warnings.catch_warnings():
        # Shape-dependent branches (padding, resizing) are traced for the run's fixed image
        # size, which the exported graph requires anyway.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # The TorchScript exporter is deprecated but needs no extra package (onnxscript).
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript", DeprecationWarning
        )
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        torch.onnx.export(
            _ScoreModule(detector.model_).eval(),
            (example,),
            Path(scratch) / "model.onnx",
            input_names=["images"],
            output_names=["scores"],
            dynamic_axes={"images": {0: "batch"}, "scores": {0: "batch"}},
            opset_version=opset_version,
            **options,
        )
        model = onnx.load(Path(scratch) / "model.onnx")
    metadata = {
        "method": detector.method,
        "in_channels": str(detector.in_channels_),
        "image_size": str(size),
        "threshold": repr(float(detector.threshold_)),
        "threshold_rule": str(detector.threshold_rule_),
        "input": "float32 images (batch, channels, size, size) in [0, 1]",
        "output": "anomaly score per image, higher = more anomalous",
    }
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    with atomic_open(output, "wb") as handle:
        handle.write(model.SerializeToString())
    return output
