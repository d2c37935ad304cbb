"""The experiment protocol: one class normal, a few labelled anomalies, optional pollution.

Counts follow Deep SAD (Ruff et al., ICLR 2020) so results line up with its published tables:
every training image of the normal class is used; labelled anomalies make up ``anomaly_ratio``
(gamma_l) of the training set and unlabelled anomalies (``pollution``, gamma_p) make up that share
of the unlabelled part. ``anomaly_ratio=None`` instead labels every training image of the known
anomaly classes (the default for image folders, which hold few defects), and the resulting
gamma_l is reported by :attr:`Split.anomaly_ratio`. A validation split is then held out of each
group. The test set is the whole test split, labelled 1 wherever the class is not the normal one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anomalia.errors import ConfigError


@dataclass(frozen=True)
class Split:
    """Indices into a dataset's train and test arrays, and the labels training may see.

    ``*_targets`` use training semantics: 1 = labelled anomaly, 0 = normal *or unlabelled*
    (pollution hides among the zeros, as it would in practice). ``test_labels`` is the truth.
    """

    train_indices: np.ndarray
    train_targets: np.ndarray
    val_indices: np.ndarray
    val_targets: np.ndarray
    test_indices: np.ndarray
    test_labels: np.ndarray
    normal_class: int
    known_anomaly_classes: tuple[int, ...]

    @property
    def anomaly_ratio(self) -> float:
        """The realised gamma_l: labelled anomalies / all images of the training part."""
        n_train = len(self.train_targets)
        return float(self.train_targets.sum()) / n_train if n_train else 0.0

    def counts(self) -> dict[str, int | float]:
        """Sizes of each part, and the realised ``anomaly_ratio`` (4 significant digits), for
        logs and run directories."""
        return {
            "train_normal_or_unlabelled": int((self.train_targets == 0).sum()),
            "train_labelled_anomalies": int(self.train_targets.sum()),
            "val_normal_or_unlabelled": int((self.val_targets == 0).sum()),
            "val_labelled_anomalies": int(self.val_targets.sum()),
            "test_normal": int((self.test_labels == 0).sum()),
            "test_anomalies": int(self.test_labels.sum()),
            "anomaly_ratio": float(f"{self.anomaly_ratio:.4g}"),
        }

    def save(self, path: str | Path) -> None:
        """Write the indices as ``.npz`` (atomically), so a run's data can be rebuilt exactly."""
        from anomalia.utils import atomic_open

        with atomic_open(path, "wb") as handle:
            np.savez(
                handle,
                train_indices=self.train_indices,
                train_targets=self.train_targets,
                val_indices=self.val_indices,
                val_targets=self.val_targets,
                test_indices=self.test_indices,
                test_labels=self.test_labels,
                normal_class=np.array(self.normal_class),
                known_anomaly_classes=np.array(self.known_anomaly_classes, dtype=np.int64),
            )

    @classmethod
    def load(cls, path: str | Path) -> Split:
        with np.load(path) as data:
            return cls(
                train_indices=data["train_indices"],
                train_targets=data["train_targets"],
                val_indices=data["val_indices"],
                val_targets=data["val_targets"],
                test_indices=data["test_indices"],
                test_labels=data["test_labels"],
                normal_class=int(data["normal_class"]),
                known_anomaly_classes=tuple(int(c) for c in data["known_anomaly_classes"]),
            )


def deep_sad_counts(n_normal: int, anomaly_ratio: float, pollution: float) -> tuple[int, int]:
    """Numbers of (labelled anomalies, unlabelled anomalies) for ``n_normal`` normal images.

    From Deep SAD's linear system with no labelled normals: n_unlabelled_anomalies =
    gamma_p (n_normal + n_unlabelled_anomalies) and n_labelled = gamma_l * total.
    """
    n_polluted = int(pollution * n_normal / (1.0 - pollution))
    n_labelled = int(anomaly_ratio * (n_normal + n_polluted) / (1.0 - anomaly_ratio))
    return n_labelled, n_polluted


def _check_fraction(name: str, value: float, allow_zero: bool = True) -> None:
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        bound = "[0, 1)" if allow_zero else "(0, 1)"
        raise ConfigError(f"{name} must be in {bound}, got {value}")


def make_split(
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    *,
    normal_class: int,
    anomaly_ratio: float | None = 0.05,
    anomaly_classes: list[int] | None = None,
    n_known_anomaly_classes: int | None = None,
    pollution: float = 0.0,
    val_fraction: float = 0.1,
    seed: int = 0,
    n_classes: int | None = None,
) -> Split:
    """Build the seeded, reproducible split for one experiment.

    Args:
        train_labels: class of every training image.
        test_labels: class of every test image.
        normal_class: the normal class k.
        anomaly_ratio: gamma_l in [0, 1), or None to label every training image of the known
            anomaly classes (none if they have no training images: a one-class split).
        anomaly_classes: classes labelled anomalies come from (default: every other class).
        n_known_anomaly_classes: pick this many of ``anomaly_classes`` at random (k_l).
        pollution: gamma_p in [0, 1); unlabelled anomalies come from every anomalous class.
        val_fraction: share of each training group held out for validation, in [0, 1).
        seed: seeds every random choice.
        n_classes: number of classes (default: from the labels).

    Raises:
        ConfigError: a parameter is out of range or asks for more images than exist.
    """
    train_labels = np.asarray(train_labels)
    test_labels = np.asarray(test_labels)
    if n_classes is None:
        n_classes = int(max(train_labels.max(), test_labels.max())) + 1
    if not 0 <= normal_class < n_classes:
        raise ConfigError(
            f"normal_class must be a class index in 0..{n_classes - 1}, got {normal_class}"
        )
    if anomaly_ratio is not None:
        _check_fraction("anomaly_ratio", anomaly_ratio)
    _check_fraction("pollution", pollution)
    _check_fraction("val_fraction", val_fraction)
    others = [c for c in range(n_classes) if c != normal_class]
    if anomaly_classes is None:
        anomaly_classes = others
    bad = [c for c in anomaly_classes if c not in others]
    if bad or not anomaly_classes:
        raise ConfigError(
            f"anomaly_classes must be a non-empty subset of {others} (every class but the normal "
            f"one), got {anomaly_classes}"
        )
    rng = np.random.default_rng(seed)
    known = sorted(set(anomaly_classes))
    if n_known_anomaly_classes is not None:
        if not 1 <= n_known_anomaly_classes <= len(known):
            raise ConfigError(
                f"n_known_anomaly_classes must be in 1..{len(known)}, got {n_known_anomaly_classes}"
            )
        known = sorted(int(c) for c in rng.choice(known, n_known_anomaly_classes, replace=False))

    normal_idx = np.flatnonzero(train_labels == normal_class)
    if len(normal_idx) == 0:
        raise ConfigError(f"normal_class {normal_class} has no training images")
    n_labelled, n_polluted = deep_sad_counts(len(normal_idx), anomaly_ratio or 0.0, pollution)
    labelled_pool = np.flatnonzero(np.isin(train_labels, known))
    polluted_pool = np.flatnonzero(np.isin(train_labels, others))
    if anomaly_ratio is None:
        n_labelled = len(labelled_pool)
    elif n_labelled > len(labelled_pool):
        raise ConfigError(
            f"anomaly_ratio={anomaly_ratio} needs {n_labelled} labelled anomalies but classes "
            f"{known} have only {len(labelled_pool)} training images; lower anomaly_ratio "
            "(0 trains on normal images only)"
        )
    labelled_idx = rng.choice(labelled_pool, n_labelled, replace=False)
    remaining = np.setdiff1d(polluted_pool, labelled_idx)
    if n_polluted > len(remaining):
        hint = (
            "; anomaly_ratio=None labels every training anomaly of the known classes, so set "
            "anomaly_ratio or anomaly_classes to leave some unlabelled"
            if anomaly_ratio is None
            else ""
        )
        raise ConfigError(
            f"pollution={pollution} needs {n_polluted} anomalies; only {len(remaining)} left{hint}"
        )
    polluted_idx = rng.choice(remaining, n_polluted, replace=False)

    train_parts, val_parts = [], []
    for indices, target in ((normal_idx, 0), (polluted_idx, 0), (labelled_idx, 1)):
        indices = rng.permutation(indices)
        n_val = round(val_fraction * len(indices))
        val_parts.append((indices[:n_val], target))
        train_parts.append((indices[n_val:], target))

    def _join(parts: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray]:
        idx = np.concatenate([p for p, _ in parts]).astype(np.int64)
        tgt = np.concatenate([np.full(len(p), t, dtype=np.int64) for p, t in parts])
        order = np.argsort(idx, kind="stable")
        return idx[order], tgt[order]

    train_indices, train_targets = _join(train_parts)
    val_indices, val_targets = _join(val_parts)
    return Split(
        train_indices=train_indices,
        train_targets=train_targets,
        val_indices=val_indices,
        val_targets=val_targets,
        test_indices=np.arange(len(test_labels), dtype=np.int64),
        test_labels=(test_labels != normal_class).astype(np.int64),
        normal_class=normal_class,
        known_anomaly_classes=tuple(known),
    )
