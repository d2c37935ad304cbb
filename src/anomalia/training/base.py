"""What every anomalia LightningModule shares: the wrapped scoring model, validation, optimizers.

Subclasses name their method's config class (``config_class``) and implement
``training_step`` (the update); the base builds ``self.config`` and ``self.model``, the
:class:`~anomalia.models.common.ScoringModel` the detector scores with alone, so anything used
only in training (discriminators) stays out of the scoring path.

Training batches are augmented here too (``optim["augment"]``, see
:mod:`anomalia.training.augment`), after they reach the training device and before any
``training_step`` sees them; validation and scoring batches never are.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import lightning as L
import torch

from anomalia.config import from_dict
from anomalia.errors import TrainingError
from anomalia.evaluation import auroc
from anomalia.models.common import ModelConfig, ScoringModel
from anomalia.training.augment import BatchAugmenter, batch_seed, build_augmenter


class AnomalyModule(L.LightningModule):
    """Base LightningModule.

    Args:
        in_channels: image channels.
        image_size: image side.
        model: the method's config as a plain dict (validated by its dataclass).
        optim: optimizer settings: ``lr``, ``betas``, ``weight_decay``; and ``augment``, the
            training batches' augmentation preset (default ``none``).
    """

    config_class: ClassVar[type[ModelConfig]]
    config: ModelConfig
    model: ScoringModel

    def __init__(
        self, in_channels: int, image_size: int, model: dict[str, Any], optim: dict[str, Any]
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.optim = optim
        self._val_scores: list[torch.Tensor] = []
        self._val_targets: list[torch.Tensor] = []
        self._term_sums: dict[str, torch.Tensor | float] = {}
        self._term_count = 0
        self.config = from_dict(self.config_class, model, prefix="model.")
        self.model = self.config.build(in_channels, image_size)
        preset = optim.get("augment", "none")
        self.augmenter = self._build_augmenter(preset, in_channels, image_size)

    def _build_augmenter(
        self, preset: str, in_channels: int, image_size: int
    ) -> BatchAugmenter | None:
        augmenter = build_augmenter(preset, in_channels, image_size)
        if augmenter is None:
            return None  # "none": no random number drawn, every seeded result unchanged
        if not any(p.requires_grad for p in self.model.parameters()):
            warnings.warn(
                f"train.augment={preset!r} has no effect: {type(self.model).__name__} has no "
                "trainable weights, it learns nothing from training batches",
                stacklevel=3,
            )
            return None
        # The seed the detector has just given torch (read, not drawn: the weights of every
        # network a subclass builds stay what they are without augmentation).
        self._augment_seed = torch.initial_seed()
        return augmenter

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """Augment training batches (on their device, under a seed of their own); nothing else."""
        if self.augmenter is None or self._trainer is None or not self.trainer.training:
            return batch
        x, targets = batch
        # the index of this batch in its epoch: Lightning counts it as ready just after this hook
        batch_idx = self.trainer.fit_loop.epoch_loop.batch_idx + 1
        seed = batch_seed(self._augment_seed, self.current_epoch, batch_idx, self.global_rank)
        return self.augmenter(x, seed), targets

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score (B,), higher = more anomalous."""
        return self.model.score(x)

    def check_finite(self, terms: dict[str, torch.Tensor]) -> None:
        """Stop training with an error naming the loss term that became NaN or infinite."""
        values = torch.stack([v.detach() for v in terms.values()])
        if bool(torch.isfinite(values).all()):  # one check per step, not one per term
            return
        name, value = next(
            (k, float(v.detach())) for k, v in terms.items() if not math.isfinite(float(v.detach()))
        )
        raise TrainingError(
            f"loss term {name!r} became {value} at epoch {self.current_epoch}, step "
            f"{self.global_step}; lower the learning rate (--lr) or that term's weight"
        )

    def log_terms(self, terms: dict[str, torch.Tensor], batch_size: int) -> None:
        """Accumulate this step's loss terms; their epoch means are logged once per epoch.

        Calling ``self.log`` every step costs a noticeable share of a small model's update on
        CPU, so the sums stay in tensors here and reach the logger in ``on_train_epoch_end``.
        """
        for name, value in terms.items():
            self._term_sums[name] = self._term_sums.get(name, 0.0) + value.detach() * batch_size
        self._term_count += batch_size

    def on_train_epoch_end(self) -> None:
        if self._term_count:
            means = {f"train/{k}": v / self._term_count for k, v in self._term_sums.items()}
            self.log_dict(means, sync_dist=True)
        self._term_sums.clear()
        self._term_count = 0

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, targets = batch
        self._val_scores.append(self.score(x).detach().cpu())
        self._val_targets.append(targets.detach().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_scores:
            return
        scores = torch.cat(self._val_scores).numpy()
        targets = torch.cat(self._val_targets).numpy()
        self._val_scores.clear()
        self._val_targets.clear()
        metrics = {"val/normal_score": float(scores[targets == 0].mean())}
        if targets.any():
            metrics["val/anomaly_score"] = float(scores[targets == 1].mean())
            if not targets.all():
                metrics["val/auroc"] = auroc(targets, scores)
        self.log_dict(metrics, prog_bar=True, sync_dist=True)

    def gradient_step(self, optimizer: Any, loss: torch.Tensor) -> None:
        """One manual-optimization update of ``optimizer``'s parameters from ``loss``.

        The loss must have been computed inside ``self.toggled_optimizer(optimizer)`` so that
        no other network's parameters receive gradients (a generator step leaves the
        discriminators untouched and vice versa).
        """
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()

    def make_adam(self, params: Any) -> torch.optim.Adam:
        """Adam with this run's settings, for ``params``."""
        return torch.optim.Adam(
            params,
            lr=self.optim["lr"],
            betas=(self.optim["betas"][0], self.optim["betas"][1]),
            weight_decay=self.optim["weight_decay"],
        )
