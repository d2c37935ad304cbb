"""The GAN detectors' update steps: order, isolation of networks, and every loss term."""

import lightning as L
import numpy as np
import pytest
import torch

from anomalia.config import TrainConfig
from anomalia.data.images import TensorImageDataset, collate_batch
from anomalia.data.sampler import BalancedBatchSampler
from anomalia.training import DualGanModule, GanModule

OPTIM = {"lr": 1e-3, "betas": [0.5, 0.999], "weight_decay": 0.0}


def snapshot(net):
    return [p.detach().clone() for p in net.parameters()]


def changed(net, before):
    return any(not torch.equal(p, b) for p, b in zip(net.parameters(), before, strict=True))


def recording(module_cls):
    """A subclass that records, for every optimizer step, which networks' weights changed."""

    class Recording(module_cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.steps = []

        def nets(self):
            names = ["model", "discriminator", "normal_discriminator", "anomaly_discriminator"]
            return {n: getattr(self, n) for n in names if hasattr(self, n)}

        def gradient_step(self, optimizer, loss):
            before = {n: snapshot(net) for n, net in self.nets().items()}
            super().gradient_step(optimizer, loss)
            self.steps.append(
                sorted(n for n, net in self.nets().items() if changed(net, before[n]))
            )

    return Recording


def one_step(module):
    rng = np.random.default_rng(0)
    images = torch.rand(32, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    targets = np.r_[np.zeros(24, dtype=int), np.ones(8, dtype=int)]
    rng.shuffle(targets)
    loader = torch.utils.data.DataLoader(
        TensorImageDataset(images, targets),
        batch_sampler=BalancedBatchSampler(targets, batch_size=16),
        collate_fn=collate_batch,
    )
    trainer = L.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    return module


def test_dual_gan_update_order_and_isolation():
    module = one_step(recording(DualGanModule)(1, 16, {}, OPTIM))
    assert module.steps == [
        ["normal_discriminator"],
        ["model"],
        ["anomaly_discriminator"],
        ["model"],
    ]


def test_gan_update_order_and_isolation():
    module = one_step(recording(GanModule)(1, 16, {}, OPTIM))
    assert module.steps == [["discriminator"], ["model"]]


@pytest.mark.parametrize(
    ("weight", "removed_term", "expected_steps"),
    [
        ("latent_weight", "latent", 4),
        ("patch_weight", "patch", 4),
        ("abc_weight", "abc", 4),
        ("adversarial_weight", "adversarial", 3),  # normal_D has nothing to train
        ("anomaly_adversarial_weight", "anomaly_adversarial", 3),
    ],
)
def test_dual_gan_ablation_removes_term(weight, removed_term, expected_steps):
    module = recording(DualGanModule)(1, 16, {weight: 0.0}, OPTIM)
    x = module.model.prepare(torch.rand(8, 1, 16, 16))
    is_anomaly = torch.arange(8) >= 4
    terms = {
        **module.normal_generator_loss(x, is_anomaly),
        **module.anomaly_generator_loss(x, is_anomaly),
    }
    assert removed_term not in terms
    one_step(module)
    assert len(module.steps) == expected_steps


def test_dual_gan_normal_terms_are_weighted_sum():
    module = DualGanModule(1, 28, {}, OPTIM)
    cfg = module.config
    x = module.model.prepare(torch.rand(4, 1, 28, 28))
    terms = module.normal_generator_loss(x, torch.tensor([False, False, True, False]))
    expected = (
        cfg.reconstruction_weight * terms["reconstruction"]
        + cfg.latent_weight * terms["latent"]
        + cfg.patch_weight * terms["patch"]
        + cfg.adversarial_weight * terms["adversarial"]
    )
    torch.testing.assert_close(terms["generator_normal"], expected)
    assert module.model.work_size == 32


def test_discriminators_are_not_in_the_scoring_model():
    module = DualGanModule(1, 28, {}, OPTIM)
    assert not any("discriminator" in k for k in module.model.state_dict())
    assert module.normal_discriminator is not module.anomaly_discriminator


def test_train_config_defaults_match_the_study():
    config = TrainConfig()
    assert (config.batch_size, config.n_epochs, config.lr) == (32, 15, 1e-3)


def test_non_finite_loss_names_the_term():
    from anomalia.errors import TrainingError
    from anomalia.training import AutoencoderModule

    module = AutoencoderModule(1, 16, {}, OPTIM)
    module.check_finite({"reconstruction": torch.tensor(0.5), "abc": torch.tensor(0.1)})
    with pytest.raises(TrainingError, match="loss term 'abc' became nan at epoch 0"):
        module.check_finite(
            {"reconstruction": torch.tensor(0.5), "abc": torch.tensor(float("nan"))}
        )
