"""Training layer: one LightningModule per model family, and the Trainer set-up."""

from __future__ import annotations

from anomalia.training.augment import AUGMENT_PRESETS, BatchAugmenter, build_augmenter
from anomalia.training.autoencoder import AutoencoderModule
from anomalia.training.base import AnomalyModule
from anomalia.training.classifier import ClassifierModule
from anomalia.training.deep_sad import DeepSADModule
from anomalia.training.dual_gan import DualGanModule
from anomalia.training.gan import GanModule
from anomalia.training.knn import KnnModule
from anomalia.training.self_supervised import SelfSupervisedModule
from anomalia.training.trainer import build_trainer, fit, quiet_lightning

__all__ = [
    "AUGMENT_PRESETS",
    "AnomalyModule",
    "AutoencoderModule",
    "BatchAugmenter",
    "ClassifierModule",
    "DeepSADModule",
    "DualGanModule",
    "GanModule",
    "KnnModule",
    "SelfSupervisedModule",
    "build_augmenter",
    "build_trainer",
    "fit",
    "quiet_lightning",
]
