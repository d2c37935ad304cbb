"""Lightning ``Trainer`` set-up shared by every method."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from anomalia.config import TrainConfig

# Noise that says nothing about the user's run: we log epoch means only, so the step-logging
# interval is irrelevant, and the pytree notice is an internal Lightning/torch deprecation.
warnings.filterwarnings("ignore", message=r"The number of training batches .* logging interval")
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
warnings.filterwarnings(
    "ignore", message=r"You defined a `validation_step` but have no `val_dataloader`"
)
# On --resume the experiment layer keeps the earlier log rows itself.
warnings.filterwarnings("ignore", message=r"Experiment logs directory .* exists and is not empty")

CHECKPOINT_DIR = "checkpoints"
LOG_DIR = "logs"


def build_trainer(
    train: TrainConfig, work_dir: str | Path | None = None, callbacks: list[Callback] | None = None
) -> L.Trainer:
    """A Trainer with this run's devices, epochs and (if ``work_dir``) checkpoints and CSV logs.

    ``accelerator``, ``devices``, ``strategy``, ``num_nodes`` and ``precision`` pass straight to
    Lightning, so multi-GPU and multi-node DDP need no code here. Our batch sampler shards itself
    across processes, hence ``use_distributed_sampler=False``.
    """
    callbacks = list(callbacks or [])
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
            "logger": CSVLogger(save_dir=work_dir, name="", version=LOG_DIR),
            "enable_checkpointing": True,
            "default_root_dir": work_dir,
        }
    return L.Trainer(
        max_epochs=train.n_epochs,
        accelerator=train.accelerator,
        devices=train.devices,
        strategy=train.strategy,
        num_nodes=train.num_nodes,
        precision=train.precision,  # type: ignore[arg-type]
        deterministic=train.deterministic,
        enable_progress_bar=train.progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,
        log_every_n_steps=50,
        num_sanity_val_steps=0,
        callbacks=callbacks,
        **kwargs,
    )
