"""Training of Deep SAD: autoencoder pretraining, then the centre c, then the Deep SAD loss."""

from __future__ import annotations

import torch

from anomalia.models.deep_sad import DeepSADConfig, DeepSADNet, deep_sad_loss
from anomalia.training.base import AnomalyModule


class DeepSADModule(AnomalyModule):
    """Epochs ``[0, n_pretrain_epochs)`` train the autoencoder on reconstruction; at the first
    Deep SAD epoch the centre c is set to the mean encoding of the training data (entries near
    0 pushed to +-0.1, as in the reference code); later epochs minimise the Deep SAD loss."""

    config_class = DeepSADConfig
    config: DeepSADConfig
    model: DeepSADNet

    def on_train_epoch_start(self) -> None:
        # Exactly at the switch: a run resumed later already has c in its checkpoint.
        if self.current_epoch == self.config.n_pretrain_epochs:
            self.init_center()

    @torch.no_grad()
    def init_center(self, eps: float = 0.1) -> None:
        """c = mean encoding of every training image (summed over DDP processes)."""
        self.model.eval()
        total = torch.zeros(self.config.rep_dim, device=self.device)
        count = torch.zeros((), device=self.device)
        for x, _ in self.trainer.train_dataloader:  # type: ignore[union-attr]
            z = self.model.encoder(x.to(self.device))
            total += z.sum(dim=0)
            count += len(z)
        total = self.trainer.strategy.reduce(total, reduce_op="sum")
        count = self.trainer.strategy.reduce(count, reduce_op="sum")
        c = total / count
        c[(c.abs() < eps) & (c < 0)] = -eps
        c[(c.abs() < eps) & (c >= 0)] = eps
        self.model.c[:] = c  # type: ignore[operator]
        self.model.train()

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, targets = batch
        if self.current_epoch < self.config.n_pretrain_epochs:
            terms = {"pretrain_reconstruction": self.model.pretrain_loss(x)}
        else:
            distance = self.model.distance(x)
            terms = {"deep_sad": deep_sad_loss(distance, targets, self.config.eta)}
        self.check_finite(terms)
        self.log_terms(terms, batch_size=len(x))
        return next(iter(terms.values()))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.make_adam(self.model.parameters())
