"""The user-facing detector, shaped like a scikit-learn / PyOD estimator.

>>> import numpy as np
>>> from anomalia import Detector
>>> rng = np.random.default_rng(0)
>>> images = rng.random((64, 1, 16, 16), dtype=np.float32)
>>> labels = np.r_[np.zeros(56), np.ones(8)]          # 1 marks a labelled anomaly
>>> det = Detector("autoencoder", n_epochs=1, progress_bar=False).fit(images, labels)
>>> det.decision_function(images).shape              # higher = more anomalous
(64,)

Image files work too: a directory (searched recursively), a file, or a list of files,
directories and glob patterns, read in batches and converted like the training data:

>>> import tempfile
>>> from PIL import Image
>>> folder = tempfile.mkdtemp()
>>> for i in range(3):
...     Image.fromarray((images[i, 0] * 255).astype(np.uint8)).save(f"{folder}/{i}.png")
>>> det.predict(folder).shape                        # or det.predict([f"{folder}/*.png"])
(3,)
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from anomalia.config import TrainConfig, from_dict, to_dict
from anomalia.data import (
    BalancedBatchSampler,
    TensorImageDataset,
    collate_batch,
    expand_image_paths,
    iter_image_batches,
    to_image_tensor,
)
from anomalia.errors import ConfigError, DataError, NotFittedError
from anomalia.evaluation import fit_threshold, flag
from anomalia.methods import METHODS, get_method
from anomalia.models import ModelConfig, ScoringModel
from anomalia.training import build_trainer, fit
from anomalia.utils import resolve_device, seed_everything, torch_save_atomic, versions

if TYPE_CHECKING:
    from lightning.pytorch.callbacks import Callback

FORMAT = "anomalia-detector"
FORMAT_VERSION = 1
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _as_targets(labels: Any, n: int, name: str) -> np.ndarray:
    if labels is None:
        return np.zeros(n, dtype=np.int64)
    targets = np.asarray(labels)
    if targets.shape != (n,):
        raise DataError(f"{name} must have one entry per image ({n}), got shape {targets.shape}")
    if not np.isin(targets, (0, 1)).all():
        raise DataError(
            f"{name} must be 0 (normal or unlabelled) or 1 (anomaly), got {np.unique(targets)}"
        )
    return targets.astype(np.int64)


class Detector:
    """An image anomaly detector that can learn from a few labelled anomalies.

    Args:
        method: a registered method (``anomalia.models.available_models()``).
        work_dir: where Lightning writes checkpoints and logs while fitting (optional).
        **params: the method's model parameters (e.g. ``latent_dim``) and training settings
            (fields of :class:`anomalia.config.TrainConfig`, e.g. ``n_epochs``, ``lr``, ``seed``).

    Attributes:
        threshold_: score from which on (``>=``) :meth:`predict` says "anomaly"; fitted on
            validation data when given to :meth:`fit`, else on the training normals.
        threshold_rule_: how ``threshold_`` was chosen, in words.
        map_scale_: for methods with maps, the 99.9th percentile of the map values of normal
            validation (else training) images: the value pictures show at full heat, so the
            overlays of one run compare. None for methods without maps.
        model_: the trained scoring network (``score(x)``), without any training-only parts.
    """

    model_: ScoringModel

    def __init__(
        self, method: str = "autoencoder", *, work_dir: str | Path | None = None, **params: Any
    ) -> None:
        self.method = method
        self.work_dir = work_dir
        self.params = params

    # ----------------------------------------------------------------------------- config
    def resolved_config(self) -> tuple[ModelConfig, TrainConfig]:
        """(model config, training config) after validating ``params``, every field and the
        rules between them."""
        model_cls = get_method(self.method).config_class
        model_fields = {f.name for f in dataclasses.fields(model_cls)}
        unknown = sorted(set(self.params) - model_fields - _TRAIN_FIELDS)
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(unknown)} for method {self.method!r}; "
                f"model parameters: {', '.join(sorted(model_fields))}; "
                f"training parameters: {', '.join(sorted(_TRAIN_FIELDS))}"
            )
        model_cfg = from_dict(
            model_cls, {k: v for k, v in self.params.items() if k in model_fields}
        )
        train_cfg = from_dict(
            TrainConfig, {k: v for k, v in self.params.items() if k in _TRAIN_FIELDS}
        )
        model_cfg.check_training(train_cfg)
        return model_cfg, train_cfg

    # -------------------------------------------------------------------------------- fit
    def fit(
        self,
        images: Any,
        labels: Any = None,
        *,
        val_images: Any = None,
        val_labels: Any = None,
        ckpt_path: str | Path | None = None,
        callbacks: Sequence[Callback] | None = None,
    ) -> Detector:
        """Train on ``images``; ``labels`` (optional) marks labelled anomalies with 1.

        Args:
            images: (N, H, W), (N, C, H, W) or (N, H, W, C); uint8 or float in [0, 1].
            labels: 0 = normal or unlabelled, 1 = labelled anomaly; None = all normal.
            val_images: held-out images used for validation metrics and the threshold.
            val_labels: their labels, as for ``labels``.
            ckpt_path: a Lightning checkpoint to resume training from.
            callbacks: Lightning callbacks added to the Trainer's own, e.g. one that reports
                each epoch's validation metrics to a hyperparameter search.

        Returns:
            self
        """
        model_cfg, train_cfg = self.resolved_config()
        x = to_image_tensor(images, "images", as_float=False)
        if x.shape[-1] != x.shape[-2]:
            raise DataError(
                f"images must be square, got {x.shape[-2]}x{x.shape[-1]}; resize them first"
            )
        targets = _as_targets(labels, len(x), "labels")
        method = get_method(self.method)
        if method.needs_labelled_anomalies and not targets.any():
            raise ConfigError(
                f"method {self.method!r} learns from labelled anomalies, and none were given "
                "(labels with 1; anomaly_ratio > 0); use a method that can train on normals only"
            )
        seed_everything(train_cfg.seed)
        module = method.module(
            in_channels=x.shape[1],
            image_size=x.shape[-1],
            model=to_dict(model_cfg),
            optim={
                "lr": train_cfg.lr,
                "betas": list(train_cfg.betas),
                "weight_decay": train_cfg.weight_decay,
                "augment": train_cfg.augment,
            },
        )
        sampler = BalancedBatchSampler(
            targets, train_cfg.batch_size, train_cfg.normal_fraction, train_cfg.seed
        )
        train_loader = torch.utils.data.DataLoader(
            TensorImageDataset(x, targets),
            batch_sampler=sampler,
            collate_fn=collate_batch,
            num_workers=train_cfg.num_workers,
            persistent_workers=train_cfg.num_workers > 0,
        )
        val_loader = None
        if val_images is not None:
            vx = to_image_tensor(val_images, "val_images", as_float=False)
            if vx.shape[1:] != x.shape[1:]:
                raise DataError(
                    f"val_images are {tuple(vx.shape[1:])} but images are {tuple(x.shape[1:])}"
                )
            vy = _as_targets(val_labels, len(vx), "val_labels")
            val_loader = torch.utils.data.DataLoader(
                TensorImageDataset(vx, vy),
                batch_size=train_cfg.eval_batch_size,
                collate_fn=collate_batch,
            )
        trainer = build_trainer(train_cfg, self.work_dir, list(callbacks or []))
        fit(trainer, module, train_loader, val_loader, ckpt_path=ckpt_path)
        # Under DDP every process ends here with the same weights; only rank 0 writes results.
        self.global_rank_ = trainer.global_rank
        self.world_size_ = trainer.world_size

        self.model_config_ = model_cfg
        self.train_config_ = train_cfg
        self.in_channels_ = int(x.shape[1])
        self.image_size_ = int(x.shape[-1])
        self.model_ = module.model.eval()
        self.device_ = resolve_device(train_cfg.accelerator)
        q = train_cfg.threshold_quantile
        normal_images = vx[vy == 0] if val_images is not None else x[targets == 0]
        self.map_scale_ = self._fit_map_scale(normal_images)
        if val_images is not None:
            self.threshold_, self.threshold_rule_ = fit_threshold(
                self.decision_function(vx), vy, q, "validation"
            )
        else:
            # In-sample scores run low (the model has seen these images), so the threshold
            # flags more new normals than the quantile says.
            warnings.warn(
                f"no validation data: the threshold is the {q:g} quantile of the training "
                "normals' own scores, which run lower than new images'; hold out validation "
                "data (val_fraction > 0) for a calibrated threshold",
                stacklevel=2,
            )
            normals = x[targets == 0]
            self.threshold_, self.threshold_rule_ = fit_threshold(
                self._score(normals, training=True), np.zeros(len(normals)), q, "training"
            )
        return self

    # ---------------------------------------------------------------------------- scoring
    def _fit_map_scale(self, normals: torch.Tensor, n_max: int = 512) -> float | None:
        if not self.has_maps or not len(normals):
            return None
        maps = self.anomaly_maps(normals[:n_max])
        return float(np.quantile(maps, 0.999)) or None

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "this Detector is not fitted yet; call fit(images, labels) or Detector.load(path)"
            )

    def iter_file_batches(
        self,
        paths: Sequence[str | os.PathLike[str]],
        batch_size: int | None = None,
        skipped: list[Path] | None = None,
    ) -> Iterator[tuple[list[Path], np.ndarray]]:
        """(files, uint8 images (B, C, S, S)) for image files, one batch at a time.

        ``paths`` are files, directories (searched recursively) or glob patterns, read in the
        order of :func:`anomalia.data.expand_image_paths` and converted like folder training
        data (the detector's channels, resized to its image size). Memory stays bounded by
        ``batch_size`` (default ``eval_batch_size``) whatever the number of files.

        Args:
            skipped: if given, unreadable files are appended to it instead of raising.
        """
        self._check_fitted()
        yield from iter_image_batches(
            expand_image_paths(paths),
            mode="L" if self.in_channels_ == 1 else "RGB",
            image_size=self.image_size_,
            batch_size=batch_size or self.train_config_.eval_batch_size,
            skipped=skipped,
        )

    def _batches(self, images: Any) -> Iterator[torch.Tensor]:
        """Float batches on the scoring device, converted one batch at a time so memory stays
        bounded by the batch size whatever the number of images. ``images`` may also name
        image files (see :meth:`iter_file_batches`)."""
        if isinstance(images, str | os.PathLike) or (
            isinstance(images, list | tuple)
            and all(isinstance(p, str | os.PathLike) for p in images)
        ):
            paths = [images] if isinstance(images, str | os.PathLike) else images
            n_images = 0
            for _, batch in self.iter_file_batches(paths):
                n_images += len(batch)
                yield to_image_tensor(batch, "images").to(self.device_)
            if n_images == 0:
                raise DataError(f"no image files found in {images}")
            return
        if not isinstance(images, np.ndarray | torch.Tensor):
            raise DataError(
                f"images must be a NumPy array or a torch tensor, got {type(images).__name__}"
            )
        if len(images) == 0:
            raise DataError("images is empty")
        expected = (self.in_channels_, self.image_size_, self.image_size_)
        bs = self.train_config_.eval_batch_size
        for start in range(0, len(images), bs):
            x = to_image_tensor(images[start : start + bs], "images")
            if tuple(x.shape[1:]) != expected:
                raise DataError(
                    f"images are {tuple(x.shape[1:])} but the detector was trained on "
                    f"{expected} (C, H, W)"
                )
            yield x.to(self.device_)

    def decision_function(self, images: Any) -> np.ndarray:
        """Anomaly score per image (higher = more anomalous), computed in batches.

        Args:
            images: an array or tensor as for :meth:`fit`, or image files: a directory, a file,
                or a list of files, directories and glob patterns (read in batches, in the order
                of :func:`anomalia.data.expand_image_paths`).
        """
        return self._score(images)

    @torch.inference_mode()
    def _score(self, images: Any, training: bool = False) -> np.ndarray:
        """Scores in batches; ``training``: the images are the model's own training images."""
        self._check_fitted()
        self.model_.to(self.device_).eval()
        score = self.model_.score_training if training else self.model_.score
        scores = [score(batch).float().cpu() for batch in self._batches(images)]
        return torch.cat(scores).numpy().astype(np.float64)

    @torch.inference_mode()
    def score_with_maps(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """(scores (N,), anomaly maps (N, H, W) float32) from one forward pass per batch;
        higher = more anomalous, the maps at the detector's image size.

        Raises:
            ConfigError: the method makes no maps (see ``anomalia list``).
        """
        self._check_fitted()
        self.check_maps()
        self.model_.to(self.device_).eval()
        scores, maps = [], []
        for batch in self._batches(images):
            batch_scores, batch_maps = self.model_.score_and_map(batch)
            scores.append(batch_scores.float().cpu())
            maps.append(batch_maps.float().cpu())
        return torch.cat(scores).numpy().astype(np.float64), torch.cat(maps).numpy()

    def anomaly_maps(self, images: Any) -> np.ndarray:
        """Anomaly maps (N, H, W), float32, higher = more anomalous (see
        :meth:`score_with_maps`)."""
        return self.score_with_maps(images)[1]

    @property
    def has_maps(self) -> bool:
        """Whether the method makes anomaly maps."""
        return get_method(self.method).has_maps

    def check_maps(self) -> None:
        if not self.has_maps:
            with_maps = ", ".join(name for name, m in sorted(METHODS.items()) if m.has_maps)
            raise ConfigError(
                f"method {self.method!r} makes no anomaly maps; methods with maps: {with_maps}"
            )

    def predict(self, images: Any) -> np.ndarray:
        """1 where the score reaches ``threshold_`` (``score >= threshold_``), else 0."""
        return flag(self.decision_function(images), self.threshold_)

    @torch.inference_mode()
    def reconstruct(self, images: Any) -> np.ndarray:
        """Reconstructions (N, C, H, W) in [0, 1], for inspection and plots."""
        self._check_fitted()
        if not self.can_reconstruct:
            raise ConfigError(f"method {self.method!r} does not reconstruct images")
        self.model_.to(self.device_).eval()
        out = [self.model_.reconstruct(batch).float().cpu() for batch in self._batches(images)]
        return torch.cat(out).numpy()

    @property
    def can_reconstruct(self) -> bool:
        """Whether the method's model produces reconstructions (classifiers do not)."""
        return get_method(self.method).reconstructs

    # ------------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write weights, constructor arguments and resolved config (no pickled objects)."""
        self._check_fitted()
        torch_save_atomic(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "method": self.method,
                "model_config": to_dict(self.model_config_),
                "train_config": to_dict(self.train_config_),
                "in_channels": self.in_channels_,
                "image_size": self.image_size_,
                "threshold": self.threshold_,
                "threshold_rule": self.threshold_rule_,
                "map_scale": self.map_scale_,
                "state_dict": {k: v.cpu() for k, v in self.model_.state_dict().items()},
                "versions": versions(),
            },
            path,
        )

    @classmethod
    def load(cls, path: str | Path, accelerator: str = "auto") -> Detector:
        """Rebuild a detector written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: no saved detector there")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise DataError(f"{path}: not a readable anomalia detector file ({err})") from err
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise DataError(f"{path}: not an anomalia detector file")
        if state["format_version"] > FORMAT_VERSION:
            raise DataError(
                f"{path}: written by a newer anomalia (format {state['format_version']}); upgrade"
            )
        det = cls(state["method"], **state["model_config"], **state["train_config"])
        det.model_config_, det.train_config_ = det.resolved_config()
        det.in_channels_ = state["in_channels"]
        det.image_size_ = state["image_size"]
        det.model_ = det.model_config_.build(det.in_channels_, det.image_size_)
        det.model_.load_state_dict(state["state_dict"])
        det.model_.eval()
        det.threshold_ = state["threshold"]
        det.threshold_rule_ = state["threshold_rule"]
        det.map_scale_ = state.get("map_scale")  # absent from files written before maps
        det.device_ = resolve_device(accelerator)
        return det

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Detector({self.method!r}{', ' + params if params else ''})"
