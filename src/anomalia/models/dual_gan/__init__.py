"""The two-discriminator GAN of Kim, Jeong, Choi and Seo, "GAN-based Anomaly Detection in
Imbalance Problems" (ECCV 2020 Workshops).

Reading used (the paper's text was not available): its architecture figure and a public project
by one of its authors. Choices they leave open are parameters here.
"""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.config import param
from anomalia.errors import ConfigError
from anomalia.models.common import MapModelConfig
from anomalia.models.discriminator import PatchDiscriminator
from anomalia.models.dual_gan.loss import DualGanGeneratorLoss, latent_loss, patch_loss
from anomalia.models.dual_gan.torch_model import DualGanGenerator, UNetGenerator, work_size_for


@dataclass
class DualGanConfig(MapModelConfig):
    """Parameters of the two-discriminator GAN. A weight of 0 removes its term (ablation);
    the paper's values are given in parentheses."""

    base_width: int = param(16, ge=1, help="U-Net width; the paper's 64 is the paper preset")
    discriminator_width: int = param(
        16, ge=1, help="first-layer channels of each PatchGAN discriminator"
    )
    reconstruction_weight: float = param(1.5, ge=0, help="L1 reconstruction on normals (1.5)")
    latent_weight: float = param(
        0.5, ge=0, help="L1 between bottlenecks of a normal and its reconstruction (0.5)"
    )
    patch_weight: float = param(1.5, ge=0, help="mean L1 of the worst patches of normals (1.5)")
    adversarial_weight: float = param(
        0.5, ge=0, help="BCE(normal_D(reconstruction of a normal), 1) (0.5)"
    )
    abc_weight: float = param(
        0.5, ge=0, help="ABC -log(1 - exp(-L1 error)) on labelled anomalies (0.5)"
    )
    anomaly_adversarial_weight: float = param(
        1.0, ge=0, help="BCE(anomaly_D(reconstruction of an anomaly), 0) (1.0)"
    )
    normal_discriminator_weight: float = param(1.0, ge=0, help="scale of normal_D's loss (1.0)")
    anomaly_discriminator_weight: float = param(0.5, ge=0, help="scale of anomaly_D's loss (0.5)")
    patch_size: int | None = param(
        None, ge=2, help="patch side at the working size (default: working size / 4)"
    )
    patch_stride: int | None = param(None, ge=1, help="patch stride (default: patch_size / 2)")
    n_worst_patches: int | None = param(
        None, ge=1, help="patches averaged by the patch loss (default: a tenth of them)"
    )

    def build(self, in_channels: int, image_size: int) -> DualGanGenerator:
        """The generator: the only part used for scoring."""
        return DualGanGenerator(
            in_channels, image_size, self.base_width, self.map_sigma, self.image_score
        )

    def build_discriminator(self, in_channels: int) -> PatchDiscriminator:
        return PatchDiscriminator(in_channels, self.discriminator_width)

    def patch_geometry(self, image_size: int) -> tuple[int, int, int]:
        """(patch size, stride, number of worst patches) at the working size."""
        size = work_size_for(image_size)
        patch = self.patch_size or max(2, size // 4)
        if patch > size:
            raise ConfigError(
                f"model.patch_size ({patch}) exceeds the working size {size} of "
                f"{image_size}-pixel images; choose at most {size}"
            )
        stride = self.patch_stride or max(1, patch // 2)
        n_patches = ((size - patch) // stride + 1) ** 2
        return patch, stride, self.n_worst_patches or max(1, n_patches // 10)


__all__ = [
    "DualGanConfig",
    "DualGanGenerator",
    "DualGanGeneratorLoss",
    "UNetGenerator",
    "latent_loss",
    "patch_loss",
]
