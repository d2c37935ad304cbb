"""The two-discriminator GAN of Kim, Jeong, Choi and Seo, "GAN-based Anomaly Detection in
Imbalance Problems" (ECCV 2020 Workshops).

Reading used (the paper's text was not available): its architecture figure and a public project
by one of its authors. Choices they leave open are parameters here.
"""

from __future__ import annotations

from dataclasses import dataclass

from anomalia.models.common import check_weights
from anomalia.models.discriminator import PatchDiscriminator
from anomalia.models.dual_gan.loss import latent_loss, patch_loss
from anomalia.models.dual_gan.torch_model import DualGanGenerator, UNetGenerator, work_size_for


@dataclass
class DualGanConfig:
    """Parameters of the two-discriminator GAN. A weight of 0 removes its term (ablation).

    Attributes:
        base_width: U-Net width; the paper's 64 is the ``paper`` preset, 16 fits a CPU.
        discriminator_width: first-layer channels of each PatchGAN discriminator.
        reconstruction_weight: L1 reconstruction on normals (paper 1.5).
        latent_weight: L1 between bottlenecks of a normal and its reconstruction (0.5).
        patch_weight: mean L1 of the worst patches of normals (1.5).
        adversarial_weight: BCE(normal_D(reconstruction of a normal), 1) (0.5).
        abc_weight: ABC -log(1 - exp(-L1 error)) on labelled anomalies (0.5).
        anomaly_adversarial_weight: BCE(anomaly_D(reconstruction of an anomaly), 0) (1.0).
        normal_discriminator_weight: scale of normal_D's loss (1.0).
        anomaly_discriminator_weight: scale of anomaly_D's loss (0.5).
        patch_size: patch side at the working size (default: working size / 4).
        patch_stride: patch stride (default: patch_size / 2).
        n_worst_patches: patches averaged by the patch loss (default: a tenth of them).
    """

    base_width: int = 16
    discriminator_width: int = 16
    reconstruction_weight: float = 1.5
    latent_weight: float = 0.5
    patch_weight: float = 1.5
    adversarial_weight: float = 0.5
    abc_weight: float = 0.5
    anomaly_adversarial_weight: float = 1.0
    normal_discriminator_weight: float = 1.0
    anomaly_discriminator_weight: float = 0.5
    patch_size: int | None = None
    patch_stride: int | None = None
    n_worst_patches: int | None = None

    score_name = "reconstruction loss"  # class attribute: what the score is, for tables

    def __post_init__(self) -> None:
        check_weights(self)

    def build(self, in_channels: int, image_size: int) -> DualGanGenerator:
        """The generator: the only part used for scoring."""
        return DualGanGenerator(in_channels, image_size, self.base_width)

    def build_discriminator(self, in_channels: int) -> PatchDiscriminator:
        return PatchDiscriminator(in_channels, self.discriminator_width)

    def patch_geometry(self, image_size: int) -> tuple[int, int, int]:
        """(patch size, stride, number of worst patches) at the working size."""
        size = work_size_for(image_size)
        patch = self.patch_size or max(2, size // 4)
        stride = self.patch_stride or max(1, patch // 2)
        n_patches = ((size - patch) // stride + 1) ** 2
        return patch, stride, self.n_worst_patches or max(1, n_patches // 10)


__all__ = [
    "DualGanConfig",
    "DualGanGenerator",
    "UNetGenerator",
    "latent_loss",
    "patch_loss",
]
