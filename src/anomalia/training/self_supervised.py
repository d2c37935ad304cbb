"""Training of the self-supervised detector: augmented, quarter-turned views of the normal
images and a rotation-prediction loss, outlier exposure on the labelled anomalies, then the
feature banks."""

from __future__ import annotations

from typing import Any

import torch

from anomalia.models.self_supervised import (
    SelfSupervisedConfig,
    SelfSupervisedScorer,
    exposure_loss,
    rotate_quarters,
    rotation_loss,
)
from anomalia.training.augment import batch_seed, build_augmenter
from anomalia.training.base import AnomalyModule
from anomalia.training.knn import fill_banks, training_set_batches


class SelfSupervisedModule(AnomalyModule):
    """Each step: two views of the batch's normals (the ``views`` preset), each image of each
    view turned by a random multiple of 90 degrees, and the rotation head's cross-entropy on
    the turns; one turned view of the labelled anomalies and the exposure loss on it. Every
    view and turn is drawn under a seed of its own (run seed, epoch, batch, process, stream),
    so runs repeat and resume exactly.

    The feature banks are filled from the whole, un-augmented training set when training ends,
    and before each validation when the score uses them (so ``val/auroc`` is that of the
    detector as it is); for ``score=fused`` the rotation score's spread too, and once the pixel
    banks and their score's spread.
    """

    config_class = SelfSupervisedConfig
    config: SelfSupervisedConfig
    model: SelfSupervisedScorer

    def __init__(
        self, in_channels: int, image_size: int, model: dict[str, Any], optim: dict[str, Any]
    ) -> None:
        super().__init__(in_channels, image_size, model, optim)
        self.views = build_augmenter(self.config.views, in_channels, image_size)
        self._view_seed = torch.initial_seed()  # read, not drawn: the weights stay as seeded

    def _turned_view(
        self, x: torch.Tensor, batch_idx: int, stream: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """An augmented view of ``x`` with each image turned by a random quarter, and the turns."""
        seed = batch_seed(self._view_seed, self.current_epoch, batch_idx, self.global_rank, stream)
        generator = torch.Generator().manual_seed(seed)
        quarters = torch.randint(0, 4, (len(x),), generator=generator).to(x.device)
        view = x if self.views is None else self.views(x, seed)
        return rotate_quarters(view, quarters), quarters

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, targets = batch
        normals, anomalies = x[targets == 0], x[targets == 1]
        first, first_turns = self._turned_view(normals, batch_idx, 0)
        second, second_turns = self._turned_view(normals, batch_idx, 1)
        logits = self.model.rotation_logits(torch.cat([first, second]))  # (2n, members, 4)
        terms = {"rotation": rotation_loss(logits, torch.cat([first_turns, second_turns]))}
        loss = terms["rotation"]
        if self.config.exposure_weight > 0 and len(anomalies):
            turned, _ = self._turned_view(anomalies, batch_idx, 2)
            terms["exposure"] = exposure_loss(self.model.rotation_logits(turned))
            loss = loss + self.config.exposure_weight * terms["exposure"]
        self.check_finite(terms)
        self.log_terms(terms, batch_size=len(x))
        return loss

    def on_validation_epoch_start(self) -> None:
        if self.config.score != "rotation":  # the rotation score needs no banks
            self._fill_banks()

    def on_train_end(self) -> None:
        self._fill_banks()

    def _fill_banks(self) -> None:
        fill_banks(self)
        if self.model.pixels is not None:
            self._fit_fusion_scale()

    @torch.no_grad()
    def _fit_fusion_scale(self) -> None:
        """The two scores' spreads over the normal training images, for ``score=fused``. The
        pixel banks and the pixel scores' spread depend on the training images only, so they
        are computed once (a resumed run has them from its checkpoint); the rotation spread
        follows the network and is measured again each time."""
        pixels = self.model.pixels
        assert pixels is not None
        first = not pixels.is_fitted
        if first:
            fill_banks(self, pixels)
        rotation, pixel_scores = [], []
        for x, t in training_set_batches(self):
            normals = x[t == 0]
            rotation.append(self.model.rotation_score(normals))
            if first:
                pixel_scores.append(pixels.score(normals, exclude_self=True))
        self.model.set_fusion_scale(torch.cat(rotation), torch.cat(pixel_scores) if first else None)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.make_adam(self.model.parameters())
