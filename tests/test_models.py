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


@pytest.mark.parametrize("name", available_methods())
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 17)])
def test_maps_come_with_the_same_scores(name, channels, size):
    model = build(name, channels, size).eval()
    x = torch.rand(3, channels, size, size)
    if not get_method(name).has_maps:
        with pytest.raises(NotImplementedError, match="no anomaly maps"):
            model.score_and_map(x)
        return
    with torch.no_grad():
        scores, maps = model.score_and_map(x)
        torch.testing.assert_close(scores, model.score(x))
    assert maps.shape == (3, size, size)
    assert torch.isfinite(maps).all() and (maps >= 0).all()


@pytest.mark.parametrize("name", [m for m in available_methods() if get_method(m).has_maps])
def test_map_points_at_a_local_defect(name):
    """A blob pasted on an image the model knows lights up the map where it was pasted."""
    torch.manual_seed(0)
    config = get_method(name).config_class()
    model = config.build(1, 28).eval()
    clean = torch.rand(1, 1, 28, 28) * 0.2
    if hasattr(model, "set_banks"):  # knn: the clean image is the normal bank
        model.set_banks(model.features(clean), model.features(clean)[:0])
    else:  # a reconstruction model that reproduced the clean image exactly
        model.forward = lambda x: clean if x.dim() == 4 else x  # type: ignore[method-assign]
        if name == "dual_gan":
            model.unet.forward = lambda x: (model.prepare(clean), None)  # type: ignore[method-assign]
    defect = clean.clone()
    defect[..., 18:23, 4:9] = 1.0
    with torch.no_grad():
        _, maps = model.score_and_map(defect)
    peak = divmod(int(maps[0].argmax()), 28)
    assert 16 <= peak[0] <= 24 and 2 <= peak[1] <= 10
