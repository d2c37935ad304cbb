"""Training-time augmentation (``train.augment``): presets, training-only, seeded, resumable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from anomalia.config import TrainConfig, from_dict, to_dict
from anomalia.data import BalancedBatchSampler, TensorImageDataset, collate_batch
from anomalia.detector import Detector
from anomalia.errors import ConfigError
from anomalia.methods import available_methods, get_method
from anomalia.models.autoencoder import AutoencoderConfig
from anomalia.models.knn import KnnConfig
from anomalia.training import (
    AUGMENT_PRESETS,
    AnomalyModule,
    AutoencoderModule,
    KnnModule,
    build_augmenter,
    build_trainer,
    fit,
)
from anomalia.utils import seed_everything
from tests.conftest import synthetic_images

SIZE = 16
OPTIM = {"lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0}


def _images(channels: int, n: int = 8, seed: int = 0) -> torch.Tensor:
    """A batch (n, channels, SIZE, SIZE) in [0, 1] with structure (stripes), not flat."""
    grey = torch.from_numpy(synthetic_images(np.arange(n) % 10, seed, SIZE)).float() / 255
    return (
        grey[:, None].repeat(1, channels, 1, 1) * torch.linspace(0.6, 1.0, channels)[:, None, None]
    )


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("preset", ["light", "strong"])
def test_presets_keep_shape_and_range_and_change_the_images(preset, channels):
    x = _images(channels)
    before = x.clone()
    augmenter = build_augmenter(preset, channels, SIZE)
    assert augmenter is not None
    y = augmenter(x, seed=3)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.equal(x, before)  # the input is left alone
    changed = (y - x).abs().flatten(1).amax(dim=1) > 1e-3
    assert bool(changed.all())


def test_strong_changes_more_than_light():
    x = _images(3, n=64)
    light = build_augmenter("light", 3, SIZE)(x, seed=0)  # type: ignore[misc]
    strong = build_augmenter("strong", 3, SIZE)(x, seed=0)  # type: ignore[misc]
    assert float((strong - x).abs().mean()) > float((light - x).abs().mean())


def test_augmenter_is_seeded_and_leaves_the_global_generator_alone():
    x = _images(3)
    augmenter = build_augmenter("strong", 3, SIZE)
    assert augmenter is not None
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a, b, c = augmenter(x, seed=1), augmenter(x, seed=1), augmenter(x, seed=2)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_none_is_no_augmenter_and_needs_no_kornia():
    assert AUGMENT_PRESETS == ("none", "light", "strong")
    assert build_augmenter("none", 3, SIZE) is None
    code = (
        "import sys\n"
        "from anomalia.training import AutoencoderModule, build_augmenter\n"
        "assert build_augmenter('none', 1, 16) is None\n"
        "assert 'kornia' not in sys.modules, 'kornia imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


@pytest.mark.parametrize("bad", ["medium", "Light", ""])
def test_unknown_preset_is_a_config_error_naming_it(bad):
    with pytest.raises(ConfigError, match=f"train.augment.*{bad!r}"):
        build_augmenter(bad, 1, SIZE)
    with pytest.raises(ConfigError, match=f"augment.*{bad!r}"):
        from_dict(TrainConfig, {"augment": bad}, prefix="train.")
    with pytest.raises(ConfigError, match=f"train.augment.*{bad!r}"):
        AutoencoderModule(1, SIZE, to_dict(_ae_config()), {**OPTIM, "augment": bad})


def test_train_config_field_defaults_to_none():
    assert TrainConfig().augment == "none"
    assert to_dict(TrainConfig(augment="light"))["augment"] == "light"


# ------------------------------------------------------------------------- in training
def _ae_config() -> AutoencoderConfig:
    return AutoencoderConfig(latent_dim=4, base_width=4)


class RecordingModule(AutoencoderModule):
    """Keeps a copy of every batch its training and validation steps receive."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen_train: list[torch.Tensor] = []
        self.seen_val: list[torch.Tensor] = []

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.seen_train.append(batch[0].detach().clone())
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.seen_val.append(batch[0].detach().clone())
        super().validation_step(batch, batch_idx)


@pytest.fixture(scope="module")
def data() -> dict[str, torch.Tensor]:
    labels = np.r_[np.zeros(48, dtype=np.int64), np.arange(1, 9)]
    val_labels = np.r_[np.zeros(16, dtype=np.int64), np.arange(1, 5)]
    return {
        "x": torch.from_numpy(synthetic_images(labels, 0, SIZE))[:, None],  # (N, 1, S, S) uint8
        "targets": torch.from_numpy((labels != 0).astype(np.int64)),
        "vx": torch.from_numpy(synthetic_images(val_labels, 1, SIZE))[:, None],
        "vy": torch.from_numpy((val_labels != 0).astype(np.int64)),
    }


def _fit(
    data: dict[str, torch.Tensor],
    preset: str | None,
    seed: int = 0,
    n_epochs: int = 2,
    work_dir: Path | None = None,
    ckpt_path: Path | None = None,
    module_class: type[AnomalyModule] = RecordingModule,
    model: dict[str, Any] | None = None,
) -> Any:
    """Train the way :meth:`Detector.fit` does, with ``augment`` in the module's settings
    (``None``: the key left out, as before augmentation existed)."""
    train_cfg = TrainConfig(
        batch_size=16, n_epochs=n_epochs, seed=seed, accelerator="cpu", progress_bar=False
    )
    seed_everything(seed)
    optim = OPTIM if preset is None else {**OPTIM, "augment": preset}
    module = module_class(1, SIZE, to_dict(_ae_config()) if model is None else model, optim)
    sampler = BalancedBatchSampler(data["targets"].numpy(), 16, 0.5, seed)
    loader = torch.utils.data.DataLoader(
        TensorImageDataset(data["x"], data["targets"]),
        batch_sampler=sampler,
        collate_fn=collate_batch,
    )
    val_loader = torch.utils.data.DataLoader(
        TensorImageDataset(data["vx"], data["vy"]), batch_size=64, collate_fn=collate_batch
    )
    if module.augmenter is not None:  # count the batches it augments
        augmenter, module.n_augmented = module.augmenter, 0

        def counting(x: torch.Tensor, seed: int) -> torch.Tensor:
            module.n_augmented += 1
            return augmenter(x, seed)

        module.augmenter = counting
    fit(build_trainer(train_cfg, work_dir), module, loader, val_loader, ckpt_path=ckpt_path)
    return module


def _weights(module: AutoencoderModule) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_none_changes_nothing(data):
    """``augment: none`` is the behaviour from before the field existed, to the bit: the same
    batches reach the training step and the same weights come out."""
    without = _fit(data, preset=None)
    none = _fit(data, preset="none")
    assert none.augmenter is None
    assert all(torch.equal(a, b) for a, b in zip(without.seen_train, none.seen_train, strict=True))
    assert _same(_weights(without), _weights(none))


def test_augmentation_happens_in_training_only(data):
    plain = _fit(data, preset="none", n_epochs=1)
    light = _fit(data, preset="light", n_epochs=1)
    assert len(light.seen_train) == len(plain.seen_train) > 0
    # the same batches were drawn (the sampler is untouched), but arrive augmented
    for a, b in zip(plain.seen_train, light.seen_train, strict=True):
        assert a.shape == b.shape and not torch.equal(a, b)
        assert float(b.min()) >= 0.0 and float(b.max()) <= 1.0
    # validation sees the images as they are
    expected = data["vx"].float() / 255
    assert light.seen_val and all(torch.equal(v, expected) for v in light.seen_val)
    # and scoring does not depend on the preset's randomness: scoring twice gives one answer
    light.model.eval()
    with torch.no_grad():
        assert torch.equal(light.score(expected), light.score(expected))


def test_same_seed_same_training_other_seed_other(data):
    a = _fit(data, preset="strong", seed=0, n_epochs=1)
    b = _fit(data, preset="strong", seed=0, n_epochs=1)
    c = _fit(data, preset="strong", seed=1, n_epochs=1)
    assert a.n_augmented == len(a.seen_train) > 0
    assert all(torch.equal(x, y) for x, y in zip(a.seen_train, b.seen_train, strict=True))
    assert _same(_weights(a), _weights(b))
    assert not _same(_weights(a), _weights(c))


def test_epochs_and_batches_get_their_own_augmentation(data):
    """Every batch is augmented under its own seed: the same images in two batches or two
    epochs are not moved the same way."""
    module = _fit(data, preset="light", n_epochs=2)
    n = len(module.seen_train) // 2
    for first, second in zip(module.seen_train[:n], module.seen_train[n:], strict=True):
        assert not torch.equal(first, second)


def test_initial_weights_do_not_depend_on_the_preset():
    """Turning augmentation on draws no random number at construction."""
    modules = {}
    for preset in AUGMENT_PRESETS:
        seed_everything(5)
        modules[preset] = AutoencoderModule(
            1, SIZE, to_dict(_ae_config()), {**OPTIM, "augment": preset}
        )
    weights = [_weights(m) for m in modules.values()]
    assert all(_same(weights[0], w) for w in weights[1:])


def test_resumed_training_equals_uninterrupted(data, tmp_path):
    """A run stopped after epoch 1 and resumed draws the same augmentations as one that ran
    through (the batch seeds come from the run seed, the epoch and the batch, not from the
    global generator's history)."""
    full = _fit(data, preset="light", n_epochs=2, work_dir=tmp_path / "full")
    _fit(data, preset="light", n_epochs=1, work_dir=tmp_path / "part")
    resumed = _fit(
        data,
        preset="light",
        n_epochs=2,
        work_dir=tmp_path / "part",
        ckpt_path=tmp_path / "part" / "checkpoints" / "last.ckpt",
    )
    n = len(resumed.seen_train)
    assert n == len(full.seen_train) // 2
    assert all(
        torch.equal(a, b) for a, b in zip(full.seen_train[-n:], resumed.seen_train, strict=True)
    )
    assert _same(_weights(full), _weights(resumed))


def _trainable(name: str) -> bool:
    return any(True for _ in get_method(name).config_class().build(1, SIZE).parameters())


@pytest.mark.parametrize("name", [m for m in available_methods() if _trainable(m)])
def test_every_trainable_method_trains_on_augmented_batches(name, data):
    method = get_method(name)
    fields = to_dict(method.config_class())
    small = {k: 4 for k in ("latent_dim", "base_width", "width", "discriminator_width", "rep_dim")}
    model = {**fields, **{k: v for k, v in small.items() if k in fields}}
    keep = np.r_[0:16, 48:52]  # 16 normals, 4 labelled anomalies: two batches
    small_data = {**data, "x": data["x"][keep], "targets": data["targets"][keep]}
    module = _fit(small_data, "strong", n_epochs=1, module_class=method.module, model=model)
    n_batches = len(BalancedBatchSampler(small_data["targets"].numpy(), 16, 0.5, 0))
    assert module.n_augmented == n_batches > 0
    assert all(torch.isfinite(p).all() for p in module.model.parameters())


def test_method_without_trainable_weights_warns_and_skips():
    with pytest.warns(UserWarning, match="train.augment='light' has no effect"):
        module = KnnModule(1, SIZE, to_dict(KnnConfig()), {**OPTIM, "augment": "light"})
    assert module.augmenter is None


def test_detector_fit_augments_and_stays_reproducible(data):
    x, targets = data["x"].numpy(), data["targets"].numpy()
    test = data["vx"].numpy()

    def scores(**params: Any) -> np.ndarray:
        det = Detector("autoencoder", latent_dim=4, base_width=4, n_epochs=2, batch_size=16,
                       accelerator="cpu", progress_bar=False, **params)  # fmt: skip
        return det.fit(x, targets).decision_function(test)

    light = scores(augment="light", seed=0)
    assert np.array_equal(light, scores(augment="light", seed=0))
    assert not np.array_equal(light, scores(augment="light", seed=1))
    assert not np.array_equal(light, scores(augment="none", seed=0))
