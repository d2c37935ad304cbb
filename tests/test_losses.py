import math

import pytest
import torch

from anomalia.models.autoencoder import AutoencoderLoss
from anomalia.models.common import abc_loss, reconstruction_error


def test_reconstruction_error_by_hand():
    x = torch.zeros(2, 1, 2, 2)
    recon = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]], [[[0.5, 0.5], [0.5, 0.5]]]])
    torch.testing.assert_close(reconstruction_error(x, recon, "mse"), torch.tensor([0.25, 0.25]))
    torch.testing.assert_close(reconstruction_error(x, recon, "l1"), torch.tensor([0.25, 0.5]))
    with pytest.raises(ValueError, match="mse"):
        reconstruction_error(x, recon, "huber")


def test_abc_by_hand_bounded_and_decreasing():
    errors = torch.tensor([0.1, 1.0, 5.0])
    expected = [-math.log(1 - math.exp(-e)) for e in (0.1, 1.0, 5.0)]
    for e, v in zip(errors, expected, strict=True):
        assert abc_loss(e.reshape(1)).item() == pytest.approx(v, rel=1e-5)
    values = torch.stack([abc_loss(e.reshape(1)) for e in torch.linspace(0.01, 20, 50)])
    assert (values[1:] < values[:-1]).all()
    assert (values >= 0).all()
    assert torch.isfinite(abc_loss(torch.zeros(3)))


def test_autoencoder_loss_combines_terms():
    x = torch.zeros(4, 1, 1, 2)
    recon = torch.tensor([0.1, 0.3, 0.5, 0.7]).reshape(4, 1, 1, 1).expand(4, 1, 1, 2)
    targets = torch.tensor([0, 0, 1, 1])
    errors = torch.tensor([0.01, 0.09, 0.25, 0.49])
    terms = AutoencoderLoss("mse", abc_weight=0.5)(x, recon, targets)
    assert terms["reconstruction"].item() == pytest.approx(0.05)
    abc = (-torch.log(1 - torch.exp(-errors[2:]))).mean().item()
    assert terms["abc"].item() == pytest.approx(abc, rel=1e-5)
    assert terms["loss"].item() == pytest.approx(0.05 + 0.5 * abc, rel=1e-5)


def test_autoencoder_loss_without_anomalies():
    x, recon = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    terms = AutoencoderLoss("l1")(x, recon, torch.zeros(2))
    assert terms["abc"].item() == 0 and terms["loss"].item() == pytest.approx(1.0)


def test_abc_pushes_anomaly_error_up():
    recon = torch.full((1, 1, 2, 2), 0.2, requires_grad=True)
    AutoencoderLoss()(torch.zeros(1, 1, 2, 2), recon, torch.ones(1))["loss"].backward()
    assert (recon.grad < 0).all()  # gradient descent raises the output, i.e. the error


def test_patch_loss_picks_worst_patches_and_keeps_gradient():
    from anomalia.models.dual_gan import patch_loss

    x = torch.zeros(1, 1, 4, 4)
    recon = torch.zeros(1, 1, 4, 4)
    recon[0, 0, 2:, 2:] = 0.8  # bottom-right 2x2 patch is the worst
    recon[0, 0, 0, 0] = 0.4  # top-left patch has mean error 0.1
    recon.requires_grad_(True)
    loss = patch_loss(x, recon, patch_size=2, stride=2, n_worst=1)
    assert loss.item() == pytest.approx(0.8)
    loss.backward()
    assert recon.grad[0, 0, 2:, 2:].abs().sum() > 0
    assert recon.grad[0, 0, :2, :].abs().sum() == 0
    two = patch_loss(x, recon, patch_size=2, stride=2, n_worst=2)
    assert two.item() == pytest.approx((0.8 + 0.1) / 2)


def test_latent_loss_by_hand():
    from anomalia.models.dual_gan import latent_loss

    assert latent_loss(torch.zeros(2, 3), torch.ones(2, 3)).item() == 1.0


def test_adversarial_and_discriminator_losses_by_hand():
    from anomalia.models.discriminator import (
        PatchDiscriminator,
        adversarial_loss,
        discriminator_loss,
    )

    zero_logits = torch.zeros(2, 1, 3, 3)
    assert adversarial_loss(zero_logits, True).item() == pytest.approx(math.log(2))
    confident = torch.full((2, 1, 3, 3), 10.0)
    assert adversarial_loss(confident, True).item() < 1e-4
    assert adversarial_loss(confident, False).item() == pytest.approx(10.0, rel=1e-3)

    class Constant(PatchDiscriminator):
        def logits(self, x):
            return x.mean(dim=1, keepdim=True)

    d = Constant(1)
    real, fake = torch.full((1, 1, 2, 2), 10.0), torch.full((1, 1, 2, 2), -10.0)
    assert discriminator_loss(d, real, fake).item() < 1e-4
    assert discriminator_loss(d, fake, real).item() == pytest.approx(10.0, rel=1e-3)


def test_patch_discriminator_outputs_probability_map():
    from anomalia.models.discriminator import PatchDiscriminator

    out = PatchDiscriminator(3, 8)(torch.rand(2, 3, 32, 32))
    assert out.shape[:2] == (2, 1) and out.shape[-1] > 1
    assert ((out > 0) & (out < 1)).all()
