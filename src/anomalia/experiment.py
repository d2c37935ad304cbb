"""One experiment end to end: data, protocol, training, evaluation, and the run directory.

Layer: above reporting, below the benchmark and the CLI (which only parses arguments and calls
these functions). The run directory's layout is :class:`anomalia.rundir.RunDir`'s.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback
from matplotlib.figure import Figure

from anomalia.config import RunConfig, from_dict, to_dict
from anomalia.data import (
    IMAGE_SUFFIXES,
    ImageData,
    Split,
    load_dataset,
    make_split,
)
from anomalia.detector import Detector
from anomalia.errors import ConfigError, DataError
from anomalia.evaluation import aupro, evaluate_scores, flag, pixel_auroc
from anomalia.export import export_onnx
from anomalia.methods import get_method
from anomalia.reporting import (
    anomaly_map_figure,
    overlay,
    reconstruction_grid_figure,
    roc_figure,
    save_figure,
    score_histogram_figure,
)
from anomalia.rundir import RunDir
from anomalia.utils import atomic_open, versions, write_csv


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: RunDir
    config: RunConfig
    metrics: dict[str, Any]


def resolve_config(config: RunConfig) -> RunConfig:
    """Fill in the method's model defaults and validate every section and the rules between
    them, before any data loads."""
    model_cfg = from_dict(get_method(config.method).config_class, config.model, prefix="model.")
    resolved = from_dict(RunConfig, {**to_dict(config), "model": to_dict(model_cfg)})
    Detector(resolved.method, **resolved.model, **to_dict(resolved.train)).resolved_config()
    return resolved


def prepare_data(config: RunConfig) -> tuple[ImageData, Split]:
    """Load the dataset and build the protocol's split."""
    data = load_dataset(
        config.data.dataset,
        config.data.data_dir,
        config.data.download,
        image_size=config.data.image_size,
        skip_bad_images=config.data.skip_bad_images,
        masks=config.data.masks,
        test_fraction=config.data.test_fraction,
        anomaly_test_fraction=config.data.anomaly_test_fraction,
    )
    split = make_split(
        data.train_labels,
        data.test_labels,
        normal_class=config.data.normal_class,
        anomaly_ratio=config.data.resolved_anomaly_ratio,
        anomaly_classes=config.data.anomaly_classes,
        n_known_anomaly_classes=config.data.n_known_anomaly_classes,
        pollution=config.data.pollution,
        val_fraction=config.data.val_fraction,
        seed=config.train.seed,
        n_classes=data.n_classes,
    )
    return data, split


def epoch_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The ``train/*`` and ``val/*`` scalars of Lightning's ``trainer.callback_metrics``, as
    floats."""
    return {
        name: float(value)
        for name, value in sorted(metrics.items())
        if name.startswith(("train/", "val/"))
    }


class _LastEpochMetrics(Callback):
    """Keeps the metrics of the last epoch, read when training ends: only then are the last
    epoch's ``train/*`` means logged (the module logs them after every callback's epoch-end
    hook)."""

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.metrics = epoch_metrics(trainer.callback_metrics)


def fit_on_validation(
    config: RunConfig,
    *,
    callbacks: Sequence[Callback] = (),
    work_dir: str | Path | None = None,
) -> dict[str, float]:
    """Train ``config`` on its split's training part, validating on its validation part after
    every epoch, and return the last epoch's metrics; the test split is never scored.

    This is what a hyperparameter search may look at: choosing settings by test metrics would
    make the test metrics of the chosen settings optimistic. (The data set's readers load the
    test images with the training images; they are not used.)

    Args:
        config: the run's settings (resolved here).
        callbacks: Lightning callbacks added to the Trainer, e.g. one that reports every
            epoch's validation metrics to a search.
        work_dir: where Lightning writes checkpoints and logs; None writes nothing.

    Returns:
        the last epoch's ``val/*`` metrics (``val/auroc`` when validation holds labelled
        anomalies and normal images) and ``train/*`` loss means.

    Raises:
        ConfigError: the split has no validation part (``data.val_fraction`` is 0).
    """
    config = resolve_config(config)
    data, split = prepare_data(config)
    if not len(split.val_indices):
        raise ConfigError(
            f"data.val_fraction={config.data.val_fraction} leaves no validation images; set "
            "data.val_fraction > 0 (e.g. 0.1)"
        )
    last = _LastEpochMetrics()
    detector = Detector(config.method, work_dir=work_dir, **config.model, **to_dict(config.train))
    detector.fit(
        data.train_images[split.train_indices],
        split.train_targets,
        val_images=data.train_images[split.val_indices],
        val_labels=split.val_targets,
        callbacks=[*callbacks, last],
    )
    return last.metrics


def write_plots(
    run: RunDir,
    detector: Detector,
    data: ImageData,
    split: Split,
    scores: np.ndarray,
    threshold: float,
    title: str,
    n_images: int = 8,
) -> None:
    """ROC curve, score histograms and reconstruction grids into the run's plots folder."""
    roc = roc_figure(split.test_labels, scores, title=f"ROC: {title}")
    save_figure(roc, run.plot_path("roc.png"))
    save_figure(
        score_histogram_figure(split.test_labels, scores, threshold, title=title),
        run.plot_path("score_histogram.png"),
    )
    if detector.has_maps:
        save_figure(map_figure(detector, data, split, scores), run.plot_path("anomaly_maps.png"))
    if not detector.can_reconstruct:
        return
    rng = np.random.default_rng(0)
    groups = []
    for name, label in (("normal", 0), ("anomaly", 1)):
        candidates = np.flatnonzero(split.test_labels == label)
        picked = rng.choice(candidates, min(n_images, len(candidates)), replace=False)
        images = data.test_images[split.test_indices[picked]]
        groups.append((name, images / 255.0, detector.reconstruct(images), scores[picked]))
    save_figure(reconstruction_grid_figure(groups), run.plot_path("reconstructions.png"))


def map_figure(
    detector: Detector, data: ImageData, split: Split, scores: np.ndarray, n_images: int = 6
) -> Figure:
    """Image, anomaly-map overlay and (when known) ground-truth mask of the most and of the
    least anomalous test images; only their maps are computed."""
    order = np.argsort(scores, kind="stable")
    groups = []
    for name, picked in (("most anomalous", order[::-1][:n_images]), ("least", order[:n_images])):
        rows = split.test_indices[picked]
        images = data.test_images[rows]
        masks = data.test_masks[rows] if data.test_masks is not None else None
        groups.append((name, images / 255.0, detector.anomaly_maps(images), masks, scores[picked]))
    return anomaly_map_figure(groups, scale=detector.map_scale_)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: Set by the leading process so the processes Lightning's DDP launcher starts (which re-run
#: the same command) train into the same run directory instead of making their own.
RUN_DIR_ENV = "ANOMALIA_RUN_DIR"


def is_leader_process() -> bool:
    """False in every process of a multi-process (DDP) launch but global rank 0.

    ``RANK`` is set in the processes a launcher started; the process a user starts on each
    node has only ``NODE_RANK`` (and ``LOCAL_RANK`` 0), so node 1's first process is not a
    leader either.
    """
    rank = os.environ.get("RANK")
    if rank is not None:
        return rank == "0"
    return os.environ.get("NODE_RANK", "0") == "0" and os.environ.get("LOCAL_RANK", "0") == "0"


def _follower_run_dir(config: RunConfig) -> RunDir:
    """Where a process other than rank 0 trains: the leader's run directory when it can be
    known (inherited from the leader on one machine, or named with ``--name`` on shared
    storage); the follower never creates or checks it. Lightning writes checkpoints and logs
    from rank 0 only."""
    if RUN_DIR_ENV in os.environ:
        return RunDir(os.environ[RUN_DIR_ENV])
    if config.name:
        return RunDir(RunDir.parent_for(config) / config.name)
    return RunDir(Path(config.output_dir) / ".ddp-worker")


def run_experiment(config: RunConfig) -> RunResult:
    """Train, evaluate and write a complete run directory; returns where and what.

    Under DDP the other processes only train: rank 0 creates the run directory, scores the
    test set and writes every file (its weights equal every other rank's after training, so the
    metrics are those of a single-process evaluation).
    """
    config = resolve_config(config)
    data, split = prepare_data(config)
    if not is_leader_process():
        return _train_and_evaluate(config, _follower_run_dir(config), data, split, info=None)
    run = RunDir.create(config)
    os.environ[RUN_DIR_ENV] = str(run)
    run.write_config(config)
    run.write_split(split)
    if data.skipped_files:  # unreadable images left out (data.skip_bad_images)
        run.write_skipped(data.skipped_files)
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
    return _train_and_evaluate(config, run, data, split, info)


def resume_experiment(run_dir: str | Path) -> RunResult:
    """Continue an interrupted run from its last checkpoint, in the same directory.

    The run's saved config and split are used as they are, so the finished run equals an
    uninterrupted one with the same seed (on CPU, bit for bit).
    """
    run = RunDir(run_dir).require(
        RunDir.CONFIG, RunDir.SPLIT, RunDir.INFO, what="a run directory that can be resumed"
    )
    info = run.read_info()
    if info.get("status") == "finished":
        raise ConfigError(f"{run} already finished; nothing to resume")
    config = resolve_config(run.read_config())
    data, _ = prepare_data(config)
    split = run.read_split()
    if not is_leader_process():
        return _train_and_evaluate(config, run, data, split, None, run.checkpoint)
    info = {**info, "status": "running", "resumed": _now()}
    info.pop("error", None)
    # Lightning's CSV logger deletes an existing metrics.csv; keep the epochs logged so far.
    log = run.log_file
    stash = log.with_name("metrics.before-resume.csv")
    write_csv(stash, _read_rows(stash) + _read_rows(log))
    log.unlink(missing_ok=True)
    result = _train_and_evaluate(config, run, data, split, info, run.checkpoint)
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


def _test_metrics(
    detector: Detector, data: ImageData, split: Split
) -> tuple[np.ndarray, dict[str, Any]]:
    """(scores, metrics) of the test split; with ground-truth masks and a method that makes
    maps, the pixel metrics too, from the same forward pass as the scores (the maps of the
    whole test split are held in memory for them: N x S x S floats)."""
    images = data.test_images[split.test_indices]
    pixels = data.test_masks is not None and detector.has_maps
    if pixels:
        scores, maps = detector.score_with_maps(images)
    else:
        scores = detector.decision_function(images)
    classes = data.test_labels[split.test_indices]
    metrics = evaluate_scores(split.test_labels, scores, detector.threshold_, classes=classes)
    metrics["threshold_rule"] = detector.threshold_rule_
    if pixels:
        assert data.test_masks is not None  # for mypy: checked above
        masks = data.test_masks[split.test_indices]
        metrics["pixel_auroc"] = pixel_auroc(masks, maps)
        metrics["aupro"] = aupro(masks, maps)
    return scores, metrics


def _train_and_evaluate(
    config: RunConfig,
    run: RunDir,
    data: ImageData,
    split: Split,
    info: dict[str, Any] | None,
    ckpt_path: Path | None = None,
) -> RunResult:
    """Fit, then (in the leading process only, ``info`` given) score and write the results."""
    if info is not None:
        run.write_info(info)
    detector = Detector(config.method, work_dir=run.path, **config.model, **to_dict(config.train))
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
            run.write_info({**info, "status": "failed", "error": str(err)})
        raise
    train_seconds = time.perf_counter() - start
    if info is None or detector.global_rank_ != 0:
        return RunResult(run_dir=run, config=config, metrics={})
    run.save_detector(detector)

    start = time.perf_counter()
    scores, metrics = _test_metrics(detector, data, split)
    metrics.update(
        train_seconds=round(train_seconds, 2),
        score_seconds=round(time.perf_counter() - start, 2),
        normal_class=config.data.normal_class,
        method=config.method,
    )
    test_classes = data.test_labels[split.test_indices]
    run.write_scores(split.test_indices, test_classes, split.test_labels, scores)
    run.write_metrics(metrics)
    if config.plots:
        class_name = data.class_names[config.data.normal_class]
        title = f"{config.method}, normal class {config.data.normal_class} ({class_name})"
        write_plots(run, detector, data, split, scores, detector.threshold_, title)
    finished = {"status": "finished", "finished": _now(), "world_size": detector.world_size_}
    run.write_info({**info, **finished})
    return RunResult(run_dir=run, config=config, metrics=metrics)


def evaluate_run(run_dir: str | Path, accelerator: str = "auto") -> tuple[dict[str, Any], float]:
    """Re-score a saved run's test set from ``model.pt`` and its saved split.

    Returns:
        (metrics, largest absolute difference from the scores saved in ``scores.csv``).
    """
    run = RunDir(run_dir).require(RunDir.CONFIG, RunDir.SPLIT, RunDir.MODEL)
    data, _ = prepare_data(run.read_config())
    split = run.read_split()
    scores, metrics = _test_metrics(run.load_detector(accelerator), data, split)
    diff = float("nan")
    if run.has(RunDir.SCORES):
        saved = run.read_scores()
        diff = float(np.abs(saved - scores).max()) if len(saved) == len(scores) else float("inf")
    return metrics, diff


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
    maps_dir: str | Path | None = None,
    save_raw_maps: bool = False,
) -> PredictResult:
    """Score image files with a run's saved detector; write ``path,score,is_anomaly`` rows.

    Files are read and scored in batches of ``batch_size`` through
    :meth:`Detector.iter_file_batches` (converted like the run's training data: the detector's
    channels, resized to its image size), so memory stays bounded whatever the number of
    files; rows are written as batches are scored. ``is_anomaly`` is 1 where
    ``score >= threshold_``, as :meth:`Detector.predict`.

    Args:
        run_dir: a finished run directory (holds ``model.pt``).
        paths: image files, directories (searched recursively for image file names) or glob
            patterns, see :func:`anomalia.data.expand_image_paths`.
        output: CSV file to write (default ``RUN_DIR/predictions.csv``), replaced atomically.
        batch_size: images read and scored at a time.
        skip_bad_images: leave unreadable files out (listed in the result) instead of raising.
        accelerator: device to score on.
        maps_dir: if given, write each image's anomaly-map overlay there as
            ``<n>-<file stem>.png`` (n: the row number, so equal names in different folders do
            not collide) and add a ``map`` column with its path; maps come from the same
            forward pass as the scores.
        save_raw_maps: with ``maps_dir``, also write the raw map (H, W) as ``.npy``.

    Raises:
        DataError: no model in ``run_dir``, a path matches nothing, a file is not a readable
            image (without ``skip_bad_images``), or no image was found at all.
        ConfigError: ``maps_dir`` for a method that makes no maps.
    """
    run = RunDir(run_dir).require(RunDir.MODEL)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    if not paths:
        raise DataError("no paths given: name image files, directories or glob patterns")
    detector = run.load_detector(accelerator)
    if maps_dir is not None:
        detector.check_maps()
        maps_dir = Path(maps_dir)
        maps_dir.mkdir(parents=True, exist_ok=True)
    output = Path(output) if output is not None else run / RunDir.PREDICTIONS
    skipped: list[Path] | None = [] if skip_bad_images else None
    n_images = n_anomalies = 0
    with atomic_open(output) as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "score", "is_anomaly"] + (["map"] if maps_dir else []))
        for batch_paths, images in detector.iter_file_batches(paths, batch_size, skipped):
            if maps_dir is None:
                scores = detector.decision_function(images)
                map_files: list[str] = []
            else:
                scores, maps = detector.score_with_maps(images)
                map_files = _write_maps(maps_dir, n_images, batch_paths, images, maps, detector)
                if save_raw_maps:
                    for name, amap in zip(map_files, maps, strict=True):
                        np.save(Path(name).with_suffix(".npy"), amap)
            flags = flag(scores, detector.threshold_)
            for i, (path, score, is_anomaly) in enumerate(
                zip(batch_paths, scores, flags, strict=True)
            ):
                writer.writerow([str(path), f"{score:.9g}", int(is_anomaly), *map_files[i : i + 1]])
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


def _write_maps(
    directory: Path,
    first_row: int,
    paths: list[Path],
    images: np.ndarray,
    maps: np.ndarray,
    detector: Detector,
) -> list[str]:
    """One overlay PNG per image (uint8 ``images`` (B, C, H, W)); returns their paths."""
    from PIL import Image

    names = []
    for i, (path, image, amap) in enumerate(zip(paths, images, maps, strict=True)):
        name = directory / f"{first_row + i:06d}-{path.stem}.png"
        Image.fromarray(overlay(image / 255.0, amap, detector.map_scale_)).save(name)
        names.append(str(name))
    return names


def export_run(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Export a run's detector as ONNX (default ``RUN_DIR/model.onnx``); see
    :func:`anomalia.export.export_onnx`."""
    run = RunDir(run_dir)
    output = output if output is not None else run / RunDir.ONNX
    return export_onnx(run.load_detector("cpu"), output)
