"""Configuration dataclasses that round-trip to YAML.

Layer: right above data (a data config checks itself against the dataset registry), below
everything else.

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
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

import yaml

from anomalia.data import get_dataset_spec
from anomalia.errors import ConfigError

T = TypeVar("T")


def param(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    factory: Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> Any:
    """A config field with its documentation and its allowed range.

    ``help`` is the one description of the field: the command line's ``--help`` and
    ``anomalia list`` print it. ``ge``/``gt``/``le``/``lt`` bound a number, or every number of a
    list; ``None`` always passes (it means "not set"). The bounds are checked when the config
    object is built (see :class:`Validated`).
    """
    bounds = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    metadata = {"help": help, "bounds": bounds}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


_BOUND_TESTS = {
    "ge": (lambda v, b: v >= b, "at least"),
    "gt": (lambda v, b: v > b, "greater than"),
    "le": (lambda v, b: v <= b, "at most"),
    "lt": (lambda v, b: v < b, "less than"),
}


class Validated:
    """Mixin for config dataclasses: every field's bounds, then ``validate()``, on creation.

    ``section`` names the config section in messages (``train.lr must be ...``), so an error
    says which key of a YAML file or which flag to change.
    """

    section: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            for kind, bound in f.metadata.get("bounds", {}).items():
                test, words = _BOUND_TESTS[kind]
                values = value if isinstance(value, list) else [value]
                bad = [v for v in values if v is not None and not test(v, bound)]
                if bad:
                    raise ConfigError(
                        f"{self.key(f.name)} must be {words} {bound:g}, got {bad[0]!r}"
                    )
        self.validate()

    def key(self, name: str) -> str:
        """The dotted config key of field ``name``."""
        return f"{self.section}.{name}" if self.section else name

    def validate(self) -> None:
        """Rules that involve several fields; override to add them."""


@dataclass
class DataConfig(Validated):
    """Which data, and the experiment protocol (Deep SAD's semantics)."""

    section: ClassVar[str] = "data"

    dataset: str = param(
        "fashion_mnist",
        help="fashion_mnist, mnist, cifar10, or your own data in --data-dir: mvtec (MVTec AD "
        "layout), folder (normal/ + anomaly/) or idx (four IDX files)",
    )
    data_dir: str | None = param(None, help="directory searched first for the dataset files")
    normal_class: int = param(0, ge=0, help="class treated as normal; the others are anomalous")
    anomaly_ratio: float | None = param(
        None,
        ge=0,
        lt=1,
        help="gamma_l, the share of labelled anomalies in the training set; default: 0.05 for "
        "the benchmark data sets (the Deep SAD protocol), every labelled anomaly for your own "
        "image folders",
    )
    anomaly_classes: list[int] | None = param(
        None, ge=0, help="classes labelled anomalies come from (default: all but the normal one)"
    )
    n_known_anomaly_classes: int | None = param(
        None,
        ge=1,
        help="pick this many of the anomaly classes at random (1 = Deep SAD's k_l = 1)",
    )
    pollution: float = param(
        0.0, ge=0, lt=1, help="gamma_p, share of unlabelled anomalies among unlabelled images"
    )
    val_fraction: float = param(
        0.1, ge=0, lt=1, help="share of training images held out for validation and thresholds"
    )
    download: bool = param(True, help="download the files when no local copy is found")
    image_size: int | None = param(
        None,
        ge=1,
        help="image folders only: resize images to this square side (default: kept when all "
        "share one square size, else 64)",
    )
    masks: Literal["auto", "required", "ignore"] = param(
        "auto",
        help="image folders only: ground-truth masks of the defects (ground_truth/ in MVTec's "
        "layout, masks/ beside normal/ and anomaly/): auto reads them when that folder exists, "
        "required stops without it, ignore never reads them",
    )
    skip_bad_images: bool = param(
        False,
        help="image folders only: leave unreadable files out (listed in skipped_images.txt) "
        "instead of stopping",
    )
    test_fraction: float = param(
        0.2, gt=0, lt=1, help="folder layout only: share of the normal images held out as test set"
    )
    anomaly_test_fraction: float = param(
        0.5,
        gt=0,
        le=1,
        help="folder layout only: share of the anomalies held out as test set; the others are "
        "the pool labelled training anomalies are drawn from",
    )

    def validate(self) -> None:
        spec = get_dataset_spec(self.dataset)
        if self.image_size is not None and not spec.reads_image_folders:
            raise ConfigError(
                f"data.image_size applies to the image-folder datasets (mvtec, folder), not "
                f"{spec.name}; remove it"
            )
        if spec.class_names and self.normal_class >= len(spec.class_names):
            raise ConfigError(
                f"data.normal_class must be a class of {spec.name} (0-"
                f"{len(spec.class_names) - 1}), got {self.normal_class}"
            )
        if self.anomaly_classes is not None and self.normal_class in self.anomaly_classes:
            raise ConfigError(
                f"data.anomaly_classes {self.anomaly_classes} includes the normal class "
                f"{self.normal_class}; remove it"
            )

    @property
    def resolved_anomaly_ratio(self) -> float | None:
        """``anomaly_ratio``, or the data set's default when it is not set (``None`` = every
        labelled anomaly of the pool)."""
        if self.anomaly_ratio is not None:
            return self.anomaly_ratio
        return get_dataset_spec(self.dataset).default_anomaly_ratio


@dataclass
class TrainConfig(Validated):
    """How to train: the study's settings are the defaults (batch 32, 15 epochs, Adam 1e-3)."""

    section: ClassVar[str] = "train"

    batch_size: int = param(32, ge=1, help="images per training batch")
    n_epochs: int = param(15, ge=1, help="passes over the normal training images")
    lr: float = param(1e-3, gt=0, help="Adam learning rate")
    betas: list[float] = param(factory=lambda: [0.9, 0.999], ge=0, lt=1, help="Adam's beta1,beta2")
    weight_decay: float = param(0.0, ge=0, help="Adam's L2 penalty")
    normal_fraction: float = param(
        0.5,
        gt=0,
        le=1,
        help="share of normal images in each balanced batch when labelled anomalies exist "
        "(0.5 = half and half, as in the study)",
    )
    seed: int = param(0, ge=0, help="seeds the split, the sampler, the weights and the batches")
    accelerator: str = param("auto", help="auto, cpu, gpu, mps, ... (passed to Lightning)")
    devices: str | int = param("auto", help="number or list of devices, or auto")
    strategy: str = param("auto", help="auto, ddp, ddp_spawn, ... (multi-GPU / multi-node)")
    precision: str = param("32-true", help="32-true, bf16-mixed, 16-mixed, ...")
    num_nodes: int = param(1, ge=1, help="machines taking part in DDP training")
    num_workers: int = param(0, ge=0, help="DataLoader worker processes")
    deterministic: bool = param(False, help="ask torch for deterministic kernels")
    progress_bar: bool = param(
        True,
        help="show Lightning's progress bar when output is a terminal (otherwise one line per "
        "epoch)",
    )
    logger: list[Literal["csv", "tensorboard", "mlflow"]] = param(
        factory=lambda: ["csv"],
        help="where per-epoch metrics are logged: csv (the run's logs/metrics.csv, always "
        "written), tensorboard, mlflow",
    )
    augment: Literal["none", "light", "strong"] = param(
        "none",
        help="augmentation of the training batches (never of validation or scoring): none; "
        "light (small shifts, turns and scaling, slight colour jitter); strong (larger affine, "
        "strong colour jitter, grayscale, blur, noise); no flips",
    )
    eval_batch_size: int = param(512, ge=1, help="images per batch when scoring")
    threshold_quantile: float = param(
        0.95,
        gt=0,
        lt=1,
        help="quantile of normal validation scores used as the decision threshold when "
        "validation holds no labelled anomalies",
    )

    def validate(self) -> None:
        if len(self.betas) != 2:
            raise ConfigError(f"train.betas must hold two numbers, got {self.betas}")


@dataclass
class RunConfig(Validated):
    """Everything one ``anomalia train`` run needs; written resolved into its run directory."""

    method: str = param("autoencoder", help="detector to train (see `anomalia list`)")
    model: dict[str, Any] = param(
        factory=dict, help="the method's model parameters (see `anomalia list`)"
    )
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    output_dir: str = param("runs", help="root of run directories")
    name: str | None = param(None, help="run directory name (default: UTC timestamp)")
    plots: bool = param(True, help="write PNG plots into the run directory")

    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        """Read a RunConfig from a YAML file (unknown keys and wrong types are errors)."""
        return from_dict(cls, load_yaml(path))


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
    bad = [key for key in data if not isinstance(key, str)]
    if bad:  # e.g. "?" or "1: x" at the top level
        raise ConfigError(f"config file {path} has key(s) {bad} that are not names; use text keys")
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
