"""The method registry: one record per detector, with everything the rest of the code asks of it.

Layer: above training (a record names its LightningModule, which names its config class), below
the detector. Adding a method means a ``models/<name>/`` folder, a training module and one
record here; nothing else keeps a list of methods.
"""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.errors import ConfigError
from anomalia.models.common import ModelConfig
from anomalia.training import (
    AnomalyModule,
    AutoencoderModule,
    ClassifierModule,
    DeepSADModule,
    DualGanModule,
    GanModule,
    KnnModule,
    SelfSupervisedModule,
)


@dataclass(frozen=True)
class Method:
    """One registered detector.

    Attributes:
        name: what users type (``--method``).
        module: the LightningModule that trains it; its ``config_class`` holds the parameters.
        summary: one line for ``anomalia list``.
        score_name: what the score measures, for tables ("reconstruction loss", ...).
        needs_labelled_anomalies: cannot train on normal images alone.
        reconstructs: its scoring model has ``reconstruct(x)`` (for reconstruction plots).
        has_maps: produces a per-pixel anomaly map beside the score.
    """

    name: str
    module: type[AnomalyModule]
    summary: str
    score_name: str
    needs_labelled_anomalies: bool = False
    reconstructs: bool = False
    has_maps: bool = False

    @property
    def config_class(self) -> type[ModelConfig]:
        return self.module.config_class


_METHODS = (
    Method(
        "autoencoder",
        AutoencoderModule,
        "convolutional autoencoder; reconstruction error + ABC on labelled anomalies",
        "reconstruction loss",
        reconstructs=True,
        has_maps=True,
    ),
    Method(
        "gan",
        GanModule,
        "the autoencoder as generator with one PatchGAN discriminator on normal images",
        "reconstruction loss",
        reconstructs=True,
        has_maps=True,
    ),
    Method(
        "dual_gan",
        DualGanModule,
        "two-discriminator GAN of Kim et al. (ECCV 2020 Workshops)",
        "reconstruction loss",
        reconstructs=True,
        has_maps=True,
    ),
    Method(
        "deep_sad",
        DeepSADModule,
        "Deep SAD (Ruff et al., ICLR 2020): distance to a centre in a learned representation",
        "distance to c",
        reconstructs=True,
    ),
    Method(
        "classifier",
        ClassifierModule,
        "supervised baseline: a small CNN on normal vs labelled anomalies",
        "logit",
        needs_labelled_anomalies=True,
    ),
    Method(
        "knn",
        KnnModule,
        "nearest neighbours in blurred pixel space, with labelled anomalies in the score",
        "neighbour distance",
        has_maps=True,
    ),
    Method(
        "self_supervised",
        SelfSupervisedModule,
        "encoder trained from scratch to tell which way up augmented normal images are "
        "(RotNet/GEOM); sees shapes, not pixels, for photographs",
        "rotation uncertainty",
    ),
)
METHODS: dict[str, Method] = {m.name: m for m in _METHODS}


def available_methods() -> list[str]:
    """Registered method names, sorted."""
    return sorted(METHODS)


def get_method(name: str) -> Method:
    """The record of method ``name``; an unknown name is an error listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(
            f"unknown method {name!r}; available methods: {', '.join(available_methods())}"
        ) from None


__all__ = ["METHODS", "Method", "available_methods", "get_method"]
