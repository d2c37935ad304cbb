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
