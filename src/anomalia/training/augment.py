"""Training-time augmentation presets, applied to whole batches on the training device.

A detector that compares pixels treats a shifted, turned or re-lit normal image as an anomaly.
Augmenting the training batches teaches it that those changes are normal. The presets
(``train.augment``) are built on ``kornia.augmentation`` and work on float images in [0, 1]
shaped (B, C, H, W), grey or RGB:

- ``none`` (the default): nothing; kornia is not even imported, and no random number is drawn,
  so every seeded result stays exactly what it was without this module.
- ``light``: the changes a camera set-up makes between two shots of the same thing: a small
  affine move (rotation up to 10 degrees, shift up to 5 % of the side, scale 0.95-1.05), and
  with probability 0.8 a little colour jitter (brightness and contrast +-10 %; on RGB also
  saturation +-10 % and hue +-0.02).
- ``strong``: a SimCLR-like set, scaled to keep the object in the picture: affine (rotation up
  to 30 degrees, shift up to 15 %, scale 0.75-1.25, shear up to 10 degrees), colour jitter with
  probability 0.8 (brightness, contrast +-40 %; on RGB also saturation +-40 %, hue +-0.1), on RGB
  grayscale with probability 0.2, a Gaussian blur (sigma 0.1-1.5) and Gaussian noise
  (std 0.03), each with probability 0.5.

No preset flips: a mirrored digit, or a transistor mounted the other way round, is a different
thing, and which flips keep the meaning depends on the data. Pixels moved in from outside the
image repeat its border. The result is clamped to [0, 1].

Randomness: each batch is augmented under its own seed (:func:`batch_seed`, from a run seed, the
epoch, the batch and the process), inside :func:`torch.random.fork_rng`, so the augmentation
neither depends on nor changes torch's global random state: the same seed gives the same
batches, and a run resumed from a checkpoint draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import numpy as np
import torch

from anomalia.errors import ConfigError

AugmentPreset = Literal["none", "light", "strong"]
#: The preset names ``train.augment`` accepts.
AUGMENT_PRESETS: tuple[str, ...] = get_args(AugmentPreset)


def check_preset(preset: str) -> None:
    """Raise a :class:`~anomalia.errors.ConfigError` naming ``preset`` if it is unknown."""
    if preset not in AUGMENT_PRESETS:
        raise ConfigError(f"train.augment must be one of {list(AUGMENT_PRESETS)}, got {preset!r}")


def batch_seed(run_seed: int, *keys: int) -> int:
    """A seed for one batch from the run's seed and integer keys (epoch, batch, process).

    Nearby keys give unrelated seeds (NumPy's ``SeedSequence`` mixes them), and the result fits
    :func:`torch.manual_seed`.
    """
    state = np.random.SeedSequence([run_seed, *keys]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


class BatchAugmenter:
    """One preset's kornia pipeline; call it with a batch and that batch's seed.

    A plain object, not a ``torch.nn.Module``, so it never enters a LightningModule's
    ``state_dict`` or checkpoint: it has no learned state.

    Args:
        preset: ``light`` or ``strong`` (``none`` has no augmenter: see :func:`build_augmenter`).
        in_channels: 1 (grey) or 3 (RGB); the colour transforms depend on it.
        image_size: the image side; sets the blur kernel of ``strong``.
    """

    def __init__(self, preset: str, in_channels: int, image_size: int) -> None:
        check_preset(preset)
        if preset == "none":
            raise ConfigError("train.augment 'none' has no augmenter; use build_augmenter")
        if in_channels not in (1, 3):
            raise ConfigError(f"in_channels must be 1 or 3, got {in_channels}")
        self.preset = preset
        self.pipeline = _pipeline(preset, in_channels, image_size)

    def __call__(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        """The augmented batch (B, C, H, W) in [0, 1]; ``x`` is left unchanged."""
        device = x.device
        devices = [] if device.type == "cpu" else [device.index or 0]
        device_type = "cuda" if device.type == "cpu" else device.type
        with torch.random.fork_rng(devices=devices, device_type=device_type):
            torch.manual_seed(seed)
            out = self.pipeline.to(device)(x)
        return out.clamp(0.0, 1.0)

    def __repr__(self) -> str:
        return f"BatchAugmenter({self.preset!r})"


def build_augmenter(preset: str, in_channels: int, image_size: int) -> BatchAugmenter | None:
    """The augmenter of ``preset``, or None for ``none`` (nothing to do, kornia not imported).

    Raises:
        ConfigError: ``preset`` is not one of :data:`AUGMENT_PRESETS`.
    """
    check_preset(preset)
    if preset == "none":
        return None
    return BatchAugmenter(preset, in_channels, image_size)


def _pipeline(preset: str, in_channels: int, image_size: int) -> torch.nn.Module:
    # kornia takes seconds to import: only runs that augment pay for it.
    import kornia.augmentation as K

    rgb = in_channels == 3
    steps: list[Any]
    if preset == "light":
        steps = [
            K.RandomAffine(
                degrees=10.0,
                translate=(0.05, 0.05),
                scale=(0.95, 1.05),
                padding_mode="border",
                p=1.0,
            ),
            _colour_jitter(rgb, amount=0.1, hue=0.02, p=0.8),
        ]
    else:
        kernel = max(3, image_size // 10) | 1  # odd, about a tenth of the side
        steps = [
            K.RandomAffine(
                degrees=30.0,
                translate=(0.15, 0.15),
                scale=(0.75, 1.25),
                shear=10.0,
                padding_mode="border",
                p=1.0,
            ),
            _colour_jitter(rgb, amount=0.4, hue=0.1, p=0.8),
            *([K.RandomGrayscale(p=0.2)] if rgb else []),
            K.RandomGaussianBlur((kernel, kernel), (0.1, 1.5), p=0.5),
            K.RandomGaussianNoise(mean=0.0, std=0.03, p=0.5),
        ]
    return torch.nn.Sequential(*steps)


def _colour_jitter(rgb: bool, amount: float, hue: float, p: float) -> Any:
    """Brightness and contrast by factors 1 +- ``amount``; on RGB saturation and hue too."""
    import kornia.augmentation as K

    return K.ColorJitter(amount, amount, amount if rgb else 0.0, hue if rgb else 0.0, p=p)
