"""Training layer: one LightningModule per model family, and the Trainer set-up."""

from __future__ import annotations

from anomalia.models import get_model_config
from anomalia.training.autoencoder import AutoencoderModule
from anomalia.training.base import AnomalyModule
from anomalia.training.classifier import ClassifierModule
from anomalia.training.deep_sad import DeepSADModule
from anomalia.training.dual_gan import DualGanModule
from anomalia.training.gan import GanModule
from anomalia.training.knn import KnnModule
from anomalia.training.trainer import build_trainer

#: method name -> LightningModule class; keys match :data:`anomalia.models.MODEL_CONFIGS`.
MODULES: dict[str, type[AnomalyModule]] = {
    "autoencoder": AutoencoderModule,
    "gan": GanModule,
    "dual_gan": DualGanModule,
    "deep_sad": DeepSADModule,
    "classifier": ClassifierModule,
    "knn": KnnModule,
}


def get_module_class(method: str) -> type[AnomalyModule]:
    """The LightningModule that trains ``method``."""
    get_model_config(method)  # the one place that rejects unknown names
    return MODULES[method]


__all__ = [
    "MODULES",
    "AnomalyModule",
    "AutoencoderModule",
    "ClassifierModule",
    "DeepSADModule",
    "DualGanModule",
    "GanModule",
    "KnnModule",
    "build_trainer",
    "get_module_class",
]
