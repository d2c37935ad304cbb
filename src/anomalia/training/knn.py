"""Fitting the nearest-neighbour detector: one pass over the training data fills its banks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from anomalia.models.knn import KnnConfig, KnnScorer
from anomalia.models.knn.torch_model import FeatureBankScorer
from anomalia.training.base import AnomalyModule


def training_set_batches(module: AnomalyModule) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every image of the training *dataset* (un-augmented) with its target, in batches on
    ``module``'s device, the model in eval mode meanwhile.

    The dataset, not the balanced batches, which re-draw anomalies, may leave some out, and
    under DDP give each process only a shard; so every process sees the same complete set.
    """
    loader = module.trainer.train_dataloader
    assert loader is not None
    batches = torch.utils.data.DataLoader(  # own generator: the global RNG, hence the
        loader.dataset,  # training that follows, is the same whether or not banks are filled
        batch_size=512,
        collate_fn=loader.collate_fn,
        generator=torch.Generator(),
    )
    was_training = module.model.training
    module.model.eval()
    try:
        for x, t in batches:
            yield x.to(module.device), t.to(module.device)
    finally:
        module.model.train(was_training)


@torch.no_grad()
def fill_banks(module: AnomalyModule, model: FeatureBankScorer | None = None) -> None:
    """Fill the banks of ``model`` (default ``module.model``, a :class:`FeatureBankScorer`)
    with the features of every training image (:func:`training_set_batches`), split by
    label."""
    scorer = module.model if model is None else model
    assert isinstance(scorer, FeatureBankScorer)
    features, targets = [], []
    for x, t in training_set_batches(module):
        features.append(scorer.features(x))
        targets.append(t.bool())
    f, is_anomaly = torch.cat(features), torch.cat(targets)
    scorer.set_banks(f[~is_anomaly], f[is_anomaly])


class KnnModule(AnomalyModule):
    """Stores the features of every training image as the banks when training starts, then
    stops after one epoch: there is nothing to optimise, so ``n_epochs`` is irrelevant.

    The banks are read from the training *dataset*, not from the balanced batches, which
    re-draw anomalies, may leave some out, and under DDP give each process only a shard; so
    every process builds the same complete banks.
    """

    config_class = KnnConfig
    model: KnnScorer

    def __init__(
        self, in_channels: int, image_size: int, model: dict[str, Any], optim: dict[str, Any]
    ) -> None:
        super().__init__(in_channels, image_size, model, optim)
        self.automatic_optimization = False
        # DistributedDataParallel refuses a module without trainable parameters; this unused
        # one lets a DDP run go through. It is not part of the saved scorer.
        self.ddp_anchor = torch.nn.Parameter(torch.zeros(1))

    def on_train_start(self) -> None:
        if not self.model.is_fitted:  # else resumed from a checkpoint that holds the banks
            fill_banks(self)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        return None

    def on_train_epoch_end(self) -> None:
        self.trainer.should_stop = True

    def configure_optimizers(self) -> None:
        return None
