"""Configuration dataclasses that round-trip to YAML.

Unknown keys and values of the wrong type are errors that name the key, so a typo in a config
file never silently falls back to a default. Method-specific model parameters are validated by
the dataclass that the method registers (see :mod:`anomalia.models`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from anomalia.errors import ConfigError

T = TypeVar("T")


@dataclass
class DataConfig:
    """Which data, and the experiment protocol (Deep SAD's semantics).

    Attributes:
        dataset: registered dataset name (``fashion_mnist``, ``mnist``, ``cifar10``; ``idx``
            for any data in the four-file IDX layout; ``mvtec`` or ``folder`` for your own
            images in MVTec AD's layout or in ``normal/`` and ``anomaly/`` folders).
        data_dir: where to look first for the files.
        normal_class: the class treated as normal; every other class is anomalous.
        anomaly_ratio: gamma_l, the share of labelled anomalies in the training set.
        anomaly_classes: classes labelled anomalies are drawn from (default: all but normal).
        n_known_anomaly_classes: if set, this many of ``anomaly_classes`` are picked at random
            (1 is the Deep SAD scenario, k_l = 1).
        pollution: gamma_p, the share of unlabelled anomalies mixed into the normal training data.
        val_fraction: share of the training images held out for validation and thresholds.
        download: fetch the files when no local copy is found.
        image_size: image folders only: side images are resized to (default: kept when all
            images share one square size, else 64).
        skip_bad_images: image folders only: leave unreadable files out (listed in the run's
            ``skipped_images.txt``) instead of stopping with an error.
        test_fraction: ``folder`` only: share of the normal images held out as the test set.
        anomaly_test_fraction: ``folder`` only: share of the anomalies held out as the test
            set; the others are the pool labelled training anomalies are drawn from.
    """

    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    normal_class: int = 0
    anomaly_ratio: float = 0.05
    anomaly_classes: list[int] | None = None
    n_known_anomaly_classes: int | None = None
    pollution: float = 0.0
    val_fraction: float = 0.1
    download: bool = True
    image_size: int | None = None
    skip_bad_images: bool = False
    test_fraction: float = 0.2
    anomaly_test_fraction: float = 0.5


@dataclass
class TrainConfig:
    """How to train: the study's settings are the defaults (batch 32, 15 epochs, Adam 1e-3).

    Attributes:
        batch_size: images per training batch.
        n_epochs: passes over the normal training images.
        lr: Adam learning rate.
        betas: Adam's (beta1, beta2).
        weight_decay: Adam's L2 penalty.
        normal_fraction: share of normal images in each balanced batch when labelled anomalies
            exist (0.5 = half and half, as in the study).
        seed: seeds the split, the sampler, the weights and the batches.
        accelerator, devices, strategy, precision, num_nodes: passed to Lightning's ``Trainer``.
        num_workers: DataLoader worker processes.
        deterministic: ask torch for deterministic kernels.
        progress_bar: show Lightning's progress bar (when output is a terminal; otherwise one
            line per epoch is printed instead).
        logger: where per-epoch metrics are logged besides the console: ``csv`` (the run's
            ``logs/metrics.csv``, always written), ``tensorboard``, ``mlflow``.
        eval_batch_size: images per batch when scoring.
        threshold_quantile: quantile of validation normal scores used as the decision threshold
            when validation holds no labelled anomalies.
    """

    batch_size: int = 32
    n_epochs: int = 15
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    normal_fraction: float = 0.5
    seed: int = 0
    accelerator: str = "auto"
    devices: str | int = "auto"
    strategy: str = "auto"
    precision: str = "32-true"
    num_nodes: int = 1
    num_workers: int = 0
    deterministic: bool = False
    progress_bar: bool = True
    logger: list[Literal["csv", "tensorboard", "mlflow"]] = field(default_factory=lambda: ["csv"])
    eval_batch_size: int = 512
    threshold_quantile: float = 0.95


@dataclass
class RunConfig:
    """Everything one ``anomalia train`` run needs; written resolved into its run directory."""

    method: str = "autoencoder"
    model: dict[str, Any] = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = "runs"
    name: str | None = None
    plots: bool = True


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints accepted for floats)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors: list[ConfigError] = []
        for option in get_args(tp):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(err)
        if len(errors) == 1:  # Optional[X]: X's own message is the most precise
            raise errors[0]
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key}: expected one of {list(get_args(tp))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp,) = get_args(tp)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")  # type: ignore[arg-type]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any] | None, prefix: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; "
            f"valid keys{' under ' + prefix.rstrip('.') if prefix else ''}: "
            f"{', '.join(sorted(fields))}"
        )
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as plain, YAML-safe Python data."""
    return dataclasses.asdict(obj)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror or err}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of keys, not {type(data).__name__}"
        )
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``override`` into a copy of ``base``."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def set_dotted(data: dict[str, Any], dotted_key: str, value: Any) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted_key='a.b'``, creating mappings on the way."""
    *parents, last = dotted_key.split(".")
    node = data
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted_key}: {part} is not a mapping")
        node = child
    node[last] = value


def dump_yaml(data: dict[str, Any]) -> str:
    """Serialise config data in a stable, readable order."""
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None)
