"""Lightning ``Trainer`` set-up shared by every method, and the ``fit`` call that runs it."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, Logger

from anomalia.config import TrainConfig
from anomalia.errors import ConfigError

CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"
TENSORBOARD_DIR = "tensorboard"
MLFLOW_DIR = "mlruns"

#: Lightning warnings that say nothing about the user's run, silenced only while fitting.
QUIET_MESSAGES = (
    # We log epoch means only, so the step-logging interval is irrelevant.
    r"The number of training batches .* logging interval",
    # An internal Lightning/torch deprecation (pytree).
    r".*isinstance\(treespec, LeafSpec\)",
    r"You defined a `validation_step` but have no `val_dataloader`",
    # On --resume the experiment layer keeps the earlier log rows itself.
    r"Experiment logs directory .* exists and is not empty",
    # A memory bank (knn) has no optimizer; that is the point.
    r".*configure_optimizers.* returned `None`",
)

# logger name -> (modules any one of which it needs, the extra that installs one)
_LOGGER_PACKAGES = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "mlflow": (("mlflow",), "mlflow"),
}


@contextmanager
def quiet_lightning() -> Iterator[None]:
    """Silence :data:`QUIET_MESSAGES` inside the block; the warning filters are restored after.

    Nothing is filtered at import time, so importing anomalia leaves a program's own warning
    set-up alone.
    """
    with warnings.catch_warnings():
        for message in QUIET_MESSAGES:
            warnings.filterwarnings("ignore", message=message)
        yield


def fit(
    trainer: L.Trainer,
    module: L.LightningModule,
    train_loader: Any,
    val_loader: Any = None,
    ckpt_path: str | Path | None = None,
) -> None:
    """``trainer.fit(module, train_loader, val_loader, ckpt_path=...)`` inside
    :func:`quiet_lightning`."""
    with quiet_lightning():
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path)


class EpochLines(Callback):
    """Prints one line per epoch (on global rank 0): the epoch, its ``train/*`` and ``val/*``
    metrics and its seconds. Used instead of the progress bar when output is not a terminal,
    where the bar's redrawn frames would fill a log file.

    The module logs its ``train/*`` means in its own ``on_train_epoch_end``, which Lightning
    calls after this callback's, so an epoch's line is printed when the next epoch starts (or
    training ends), once its metrics have reached ``trainer.callback_metrics``.
    """

    def __init__(self) -> None:
        self._started: float | None = None
        self._pending: tuple[int, float] | None = None  # (epoch, seconds) not yet printed

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._started is not None:
            self._pending = (trainer.current_epoch, time.perf_counter() - self._started)
        self._started = None

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._flush(trainer)

    def _flush(self, trainer: L.Trainer) -> None:
        if self._pending is None:
            return
        epoch, seconds = self._pending
        self._pending = None
        if trainer.is_global_zero:
            print(epoch_line(epoch, trainer.max_epochs, trainer.callback_metrics, seconds))
            sys.stdout.flush()


def epoch_line(epoch: int, n_epochs: int | None, metrics: dict[str, Any], seconds: float) -> str:
    """``epoch 3/15  train/loss 0.01234  val/auroc 0.9123  4.2 s`` for a 0-based ``epoch``."""
    values = []
    for name in sorted(metrics):
        if name.startswith(("train/", "val/")):
            try:
                values.append(f"{name} {float(metrics[name]):.4g}")
            except (TypeError, ValueError):  # a non-scalar; not for a one-line summary
                continue
    total = f"/{n_epochs}" if n_epochs is not None and n_epochs > 0 else ""
    return "  ".join([f"epoch {epoch + 1}{total}", *values, f"{seconds:.1f} s"])


def _require(logger: str) -> None:
    modules, extra = _LOGGER_PACKAGES[logger]
    if not any(importlib.util.find_spec(m) is not None for m in modules):
        raise ConfigError(
            f"train.logger {logger!r} needs the {' or '.join(modules)} package, which is not "
            f"installed; install it with: pip install 'anomalia[{extra}]'"
        )


def build_loggers(names: list[str], work_dir: Path) -> list[Logger]:
    """The run's loggers inside ``work_dir``: always CSV (``logs/metrics.csv``, which the
    experiment layer reads), plus TensorBoard (``tensorboard/``) and MLflow as ``names`` asks.

    MLflow logs to ``$MLFLOW_TRACKING_URI`` when that is set, else to ``mlruns/`` in the run
    directory.

    Raises:
        ConfigError: a name is unknown or its package is not installed.
    """
    unknown = [n for n in names if n not in ("csv", *_LOGGER_PACKAGES)]
    if unknown:
        raise ConfigError(
            f"train.logger has unknown logger(s) {unknown}; choose from csv, tensorboard, mlflow"
        )
    loggers: list[Logger] = [CSVLogger(save_dir=work_dir, name="", version=LOG_DIR)]
    if "tensorboard" in names:
        _require("tensorboard")
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(
            TensorBoardLogger(
                save_dir=work_dir, name="", version=TENSORBOARD_DIR, default_hp_metric=False
            )
        )
    if "mlflow" in names:
        _require("mlflow")
        from lightning.pytorch.loggers import MLFlowLogger

        uri = os.environ.get("MLFLOW_TRACKING_URI") or (work_dir / MLFLOW_DIR).resolve().as_uri()
        loggers.append(
            MLFlowLogger(experiment_name="anomalia", run_name=work_dir.name, tracking_uri=uri)
        )
    return loggers


def build_trainer(
    train: TrainConfig, work_dir: str | Path | None = None, callbacks: list[Callback] | None = None
) -> L.Trainer:
    """A Trainer with this run's devices, epochs and (if ``work_dir``) checkpoints and logs.

    ``accelerator``, ``devices``, ``strategy``, ``num_nodes`` and ``precision`` pass straight to
    Lightning, so multi-GPU and multi-node DDP need no code here. Our batch sampler shards itself
    across processes, hence ``use_distributed_sampler=False``. With ``train.progress_bar`` the
    bar is shown on a terminal; when stdout is not one (a log file, a pipe) one line per epoch
    is printed instead (:class:`EpochLines`). ``train.logger`` picks the loggers besides CSV
    (:func:`build_loggers`); without a ``work_dir`` nothing is logged to files.

    Raises:
        ConfigError: ``train.logger`` asks for tensorboard or mlflow without a ``work_dir``, or
            for one whose package is not installed.
    """
    callbacks = list(callbacks or [])
    progress_bar = train.progress_bar and sys.stdout.isatty()
    if train.progress_bar and not progress_bar:
        callbacks.append(EpochLines())
    kwargs: dict[str, Any] = {"logger": False, "enable_checkpointing": False}
    if work_dir is not None:
        work_dir = Path(work_dir)
        callbacks.append(
            ModelCheckpoint(
                dirpath=work_dir / CHECKPOINT_DIR,
                filename="epoch{epoch:03d}",
                auto_insert_metric_name=False,
                save_last=True,
                save_top_k=1,
            )
        )
        kwargs = {
            "logger": build_loggers(list(train.logger), work_dir),
            "enable_checkpointing": True,
            "default_root_dir": work_dir,
        }
    else:
        needs_dir = [n for n in train.logger if n != "csv"]
        if needs_dir:
            raise ConfigError(
                f"train.logger {needs_dir} writes into the run directory; pass a work_dir "
                "(or drop them from train.logger)"
            )
    return L.Trainer(
        max_epochs=train.n_epochs,
        accelerator=train.accelerator,
        devices=train.devices,
        strategy=train.strategy,
        num_nodes=train.num_nodes,
        precision=train.precision,  # type: ignore[arg-type]
        deterministic=train.deterministic,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,
        log_every_n_steps=50,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **kwargs,
    )
