"""Every registered model: shapes, finite outputs, gradients for every parameter."""

import pytest
import torch

from anomalia.models import available_models, get_model_config
from anomalia.training import MODULES


def build(name, in_channels=1, image_size=28):
    torch.manual_seed(0)
    model = get_model_config(name)().build(in_channels, image_size)
    fill_banks(model, in_channels, image_size)
    return model


def fill_banks(model, in_channels, image_size):
    """Memory-bank models (knn) score only once their banks hold training features."""
    if hasattr(model, "set_banks"):
        rand = lambda n: model.features(torch.rand(n, in_channels, image_size, image_size))  # noqa: E731
        model.set_banks(rand(20), rand(5))


def test_registries_agree():
    assert set(available_models()) == set(MODULES)


@pytest.mark.parametrize("name", available_models())
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (1, 30), (3, 17)])
def test_shapes_and_finite(name, channels, size):
    model = build(name, channels, size).eval()
    x = torch.rand(3, channels, size, size)
    if hasattr(model, "reconstruct"):
        assert model.reconstruct(x).shape == x.shape
    scores = model.score(x)
    assert scores.shape == (3,)
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", available_models())
def test_every_parameter_gets_a_gradient(name):
    model = build(name).train()
    if not list(model.parameters()):
        pytest.skip(f"{name} has no trainable parameters")
    x = torch.rand(4, 1, 28, 28)
    out = model.score(x).mean()
    if hasattr(model, "reconstruct"):  # e.g. Deep SAD's decoder serves pretraining only
        out = out + model.reconstruct(x).mean()
    out.backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing


@pytest.mark.parametrize("name", available_models())
def test_score_is_per_image(name):
    model = build(name).eval()
    x = torch.rand(5, 1, 28, 28)
    together = model.score(x)
    alone = torch.cat([model.score(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-6)
