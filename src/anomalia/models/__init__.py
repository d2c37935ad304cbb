"""Models layer: architectures and losses only (no optimizers, devices, files or logging).

Each model lives in its own folder with ``torch_model.py`` and ``loss.py`` and registers a
config dataclass here. Channels and image size always come from the data.
"""

from __future__ import annotations

from typing import Any

from anomalia.errors import ConfigError
from anomalia.models.autoencoder import AutoencoderConfig
from anomalia.models.classifier import ClassifierConfig
from anomalia.models.deep_sad import DeepSADConfig
from anomalia.models.dual_gan import DualGanConfig
from anomalia.models.gan import GanConfig
from anomalia.models.knn import KnnConfig

#: method name -> config dataclass with a ``build(in_channels, image_size)`` method.
MODEL_CONFIGS: dict[str, type[Any]] = {
    "autoencoder": AutoencoderConfig,
    "gan": GanConfig,
    "dual_gan": DualGanConfig,
    "deep_sad": DeepSADConfig,
    "classifier": ClassifierConfig,
    "knn": KnnConfig,
}


def available_models() -> list[str]:
    """Registered method names."""
    return sorted(MODEL_CONFIGS)


def get_model_config(name: str) -> type[Any]:
    """The config dataclass of method ``name``."""
    try:
        return MODEL_CONFIGS[name]
    except KeyError:
        raise ConfigError(
            f"unknown method {name!r}; available methods: {', '.join(available_models())}"
        ) from None


__all__ = ["MODEL_CONFIGS", "available_models", "get_model_config"]
