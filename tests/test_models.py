"""Every registered model: shapes, finite outputs, gradients for every parameter."""

import pytest
import torch

from anomalia.errors import ConfigError
from anomalia.methods import METHODS, available_methods, get_method
from anomalia.models import ModelConfig, ScoringModel


def build(name, in_channels=1, image_size=28):
    torch.manual_seed(0)
    model = get_method(name).config_class().build(in_channels, image_size)
    fill_banks(model, in_channels, image_size)
    return model


def fill_banks(model, in_channels, image_size):
    """Memory-bank models (knn) score only once their banks hold training features."""
    if hasattr(model, "set_banks"):
        rand = lambda n: model.features(torch.rand(n, in_channels, image_size, image_size))  # noqa: E731
        model.set_banks(rand(20), rand(5))


@pytest.mark.parametrize("name", available_methods())
def test_registry_record_is_complete(name):
    method = get_method(name)
    assert method.name == name
    assert issubclass(method.config_class, ModelConfig)
    model = build(name)
    assert isinstance(model, ScoringModel)
    # the record's claim about reconstructions is what the model does
    x = torch.rand(2, 1, 28, 28)
    if method.reconstructs:
        assert model.eval().reconstruct(x).shape == x.shape
    else:
        with pytest.raises(NotImplementedError):
            model.reconstruct(x)


def test_unknown_method_lists_the_known_ones():
    with pytest.raises(ConfigError, match="available methods: autoencoder"):
        get_method("autoencoderr")
    assert set(METHODS) == set(available_methods())


@pytest.mark.parametrize("name", available_methods())
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (1, 30), (3, 17)])
def test_shapes_and_finite(name, channels, size):
    model = build(name, channels, size).eval()
    x = torch.rand(3, channels, size, size)
    if get_method(name).reconstructs:
        assert model.reconstruct(x).shape == x.shape
    scores = model.score(x)
    assert scores.shape == (3,)
    assert torch.isfinite(scores).all()


@pytest.mark.parametrize("name", available_methods())
def test_every_parameter_gets_a_gradient(name):
    model = build(name).train()
    if not list(model.parameters()):
        pytest.skip(f"{name} has no trainable parameters")
    x = torch.rand(4, 1, 28, 28)
    out = model.score(x).mean()
    if get_method(name).reconstructs:  # e.g. Deep SAD's decoder serves pretraining only
        out = out + model.reconstruct(x).mean()
    out.backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing


@pytest.mark.parametrize("name", available_methods())
def test_score_is_per_image(name):
    model = build(name).eval()
    x = torch.rand(5, 1, 28, 28)
    together = model.score(x)
    alone = torch.cat([model.score(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-6)
