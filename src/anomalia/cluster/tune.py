"""``anomalia tune CONFIG``: a Ray Tune hyperparameter search scored on validation data only.

Layer: :mod:`anomalia.cluster` (above the experiment, below the CLI). Ray is imported only when
a search starts; without it :func:`run_search` raises the :class:`ConfigError` of
:func:`anomalia.cluster.require_ray`.

Why validation only: a setting chosen by its test AUROC has an optimistic test AUROC, and the
published comparison it would be set against chose nothing on test data. So every trial trains
on the training part of the protocol's split and is scored on its validation part (held out of
the normal images and of the labelled anomalies alike, ``data.val_fraction``); the test split
is scored once, for the chosen settings, after the choice (:func:`score_test_set`).

The config file holds the :class:`~anomalia.config.RunConfig` keys every trial shares (as an
``anomalia train --config`` file) and the search's own keys (:class:`SearchConfig`)::

    method: autoencoder
    data: {dataset: fashion_mnist, normal_class: 0, anomaly_ratio: 0.05}
    train: {n_epochs: 15}
    output_dir: runs/tune
    name: abc_weight                   # the search's directory under output_dir
    search_space:                      # dotted config key -> one distribution
      model.abc_weight: {grid: [0.01, 0.1, 1.0]}
      train.lr: {loguniform: [0.0001, 0.01]}
    num_samples: 1
    metric: val/auroc
    mode: max
    scheduler: asha                    # or none
    resources: {cpus: 1, gpus: 0}      # per trial

Everything a search writes is under ``<output_dir>/<name>/``: ``trials.csv`` (one row per
trial), ``best.yaml`` (the chosen settings as a complete run config), ``tune/`` (Ray Tune's
records: every epoch each trial reported) and, after the test, the chosen settings' ordinary
run directory ``<method>/<dataset>/class<k>/best/``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import Callback

from anomalia.benchmark import check_resources
from anomalia.cluster import ray_session, require_ray
from anomalia.config import (
    RunConfig,
    Validated,
    dump_yaml,
    from_dict,
    load_yaml,
    param,
    set_dotted,
    to_dict,
)
from anomalia.errors import ConfigError, TrainingError
from anomalia.experiment import (
    RunResult,
    epoch_metrics,
    fit_on_validation,
    prepare_data,
    resolve_config,
    run_experiment,
)
from anomalia.utils import atomic_open, write_csv

#: Distributions a ``search_space`` entry may name, and the Ray Tune function each maps to.
DISTRIBUTIONS = {
    "grid": "grid_search",
    "choice": "choice",
    "uniform": "uniform",
    "loguniform": "loguniform",
    "randint": "randint",
}
#: Metrics a search may optimise: what the validation step logs every epoch
#: (:class:`anomalia.training.base.AnomalyModule`), and whether it needs labelled anomalies in
#: the validation split. ``val/auroc`` is the one that compares settings; the mean scores
#: change scale with the settings.
VALIDATION_METRICS = {"val/auroc": True, "val/anomaly_score": True, "val/normal_score": False}
#: Key of every report: True on the trial's last epoch. A trial whose last report lacks it was
#: stopped early (by the scheduler) or failed.
FINAL_KEY = "final_epoch"
#: RunConfig keys that say where results go, not what is trained.
NOT_SEARCHABLE = ("output_dir", "name", "plots")
#: Searchers that run every grid point (Ray Tune's basic variant generator).
VARIANT_GENERATORS = ("variant_generator", "random")
TRIALS_CSV = "trials.csv"
BEST_YAML = "best.yaml"
TUNE_DIR = "tune"
BEST_RUN_NAME = "best"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Distribution:
    """One ``search_space`` entry: ``{kind: args}`` for the dotted config ``key``."""

    key: str
    kind: str
    args: list[Any]

    @classmethod
    def parse(cls, key: str, spec: Any) -> Distribution:
        """Check ``spec`` (``{grid: [...]}``, ``{uniform: [lo, hi]}``, ...), naming the key on
        error."""
        where = f"search_space.{key}"
        forms = ", ".join(
            ["{grid: [a, b, ...]}", "{choice: [a, b, ...]}"]
            + [f"{{{k}: [lo, hi]}}" for k in ("uniform", "loguniform", "randint")]
        )
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            raise ConfigError(f"{where} must be one of {forms}; got {spec!r}")
        kind, args = next(iter(spec.items()))
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{where}.{kind} must be a non-empty list, got {args!r}")
        if kind in ("grid", "choice"):
            return cls(key, kind, list(args))
        integer = kind == "randint"
        numbers = all(
            isinstance(v, int) if integer else isinstance(v, int | float) for v in args
        ) and not any(isinstance(v, bool) for v in args)
        if len(args) != 2 or not numbers:
            what = "integers" if integer else "numbers"
            hint = ""
            if any(isinstance(v, str) and _is_number(v) for v in args):
                hint = " (YAML reads 1e-4 as text: write 1.0e-4 or 0.0001)"
            raise ConfigError(f"{where}.{kind} must be [lo, hi], two {what}; got {args!r}{hint}")
        lo, hi = args
        if not lo < hi:
            raise ConfigError(f"{where}.{kind} must have lo < hi, got {args!r}")
        if kind == "loguniform" and lo <= 0:
            raise ConfigError(f"{where}.loguniform needs lo > 0, got {args!r}")
        return cls(key, kind, [lo, hi])

    def extremes(self) -> list[Any]:
        """The values to check before the search: every listed value, or the smallest and
        largest value a range can give (ranges exclude ``hi``, as in Ray Tune)."""
        if self.kind in ("grid", "choice"):
            return list(self.args)
        lo, hi = self.args
        if self.kind == "randint":
            return [lo, hi - 1]
        return [float(lo), math.nextafter(float(hi), -math.inf)]

    def to_tune(self, tune: Any) -> Any:
        """The Ray Tune search-space object (``tune`` is the ``ray.tune`` module)."""
        function = getattr(tune, DISTRIBUTIONS[self.kind])
        if self.kind in ("grid", "choice"):
            return function(list(self.args))
        return function(*self.args)


@dataclass
class SearchConfig(Validated):
    """A search: the run settings every trial shares, and how to search over some of them.

    The YAML file is flat: ``run``'s keys (method, model, data, train, output_dir, name, plots)
    beside the fields below; ``name`` names the search's directory under ``output_dir``.
    """

    section: ClassVar[str] = ""

    run: RunConfig = field(default_factory=RunConfig)
    search_space: dict[str, Any] = param(
        factory=dict,
        help="dotted config key -> distribution: {grid: [..]} (every value), {choice: [..]}, "
        "{uniform: [lo, hi]}, {loguniform: [lo, hi]}, {randint: [lo, hi]} (hi excluded)",
    )
    num_samples: int = param(
        1,
        ge=1,
        help="trials drawn from the search space; with grid values, each grid point is run "
        "this many times",
    )
    search_alg: str = param(
        "variant_generator",
        help="variant_generator (Ray Tune's default: grid points x random draws) or a Ray Tune "
        "searcher name (optuna, hyperopt, ...; its package must be installed; no grid then)",
    )
    metric: str = param(
        "val/auroc",
        help=f"validation metric to optimise: {', '.join(VALIDATION_METRICS)} (the last epoch's "
        "value chooses; with ASHA, every epoch's value decides which trials go on)",
    )
    mode: Literal["max", "min"] = param("max", help="max or min: which way the metric is better")
    scheduler: Literal["asha", "none"] = param(
        "asha",
        help="asha: stop trials whose validation metric trails at an epoch milestone; none: "
        "run every trial to its last epoch",
    )
    grace_period: int = param(1, ge=1, help="ASHA: epochs every trial runs before it may stop")
    reduction_factor: float = param(
        2.0, gt=1, help="ASHA: 1/reduction_factor of the trials go on at each milestone"
    )
    resources: dict[str, float] = param(
        factory=lambda: {"cpus": 1, "gpus": 0},
        help="what one trial asks of a Ray node: cpus (also its torch threads), gpus",
    )

    def validate(self) -> None:
        if not self.search_space:
            raise ConfigError("search_space must name at least one config key to search over")
        for key in self.search_space:
            if key.split(".")[0] in NOT_SEARCHABLE:
                raise ConfigError(
                    f"search_space.{key}: {key} says where results go, not what is trained; "
                    "remove it"
                )
        self.distributions()
        if self.metric not in VALIDATION_METRICS:
            raise ConfigError(
                f"metric must be a validation metric, one of {', '.join(VALIDATION_METRICS)}; "
                f"got {self.metric!r}"
            )
        check_resources(self.resources, "resources")
        if self.search_alg not in VARIANT_GENERATORS:
            grids = [d.key for d in self.distributions().values() if d.kind == "grid"]
            if grids:
                raise ConfigError(
                    f"search_alg {self.search_alg!r} cannot run a grid ({', '.join(grids)}); "
                    "use {choice: [...]} or search_alg variant_generator"
                )

    def distributions(self) -> dict[str, Distribution]:
        """The parsed ``search_space``."""
        return {key: Distribution.parse(key, spec) for key, spec in self.search_space.items()}

    @property
    def name(self) -> str:
        return self.run.name or "tune"

    @property
    def directory(self) -> Path:
        """``<output_dir>/<name>``: everything the search writes."""
        return Path(self.run.output_dir) / self.name

    @property
    def n_trials(self) -> int:
        """How many trials the search runs."""
        n = self.num_samples
        for d in self.distributions().values():
            n *= len(d.args) if d.kind == "grid" else 1
        return n

    @property
    def cpus(self) -> float:
        return check_resources(self.resources, "resources")["cpus"]

    @property
    def gpus(self) -> float:
        return check_resources(self.resources, "resources")["gpus"]


_SEARCH_FIELDS = [f.name for f in dataclasses.fields(SearchConfig) if f.name != "run"]
_RUN_FIELDS = [f.name for f in dataclasses.fields(RunConfig)]


def search_config_from_dict(data: dict[str, Any]) -> SearchConfig:
    """Build a :class:`SearchConfig` from the flat YAML mapping (unknown keys are errors)."""
    unknown = sorted(set(data) - set(_SEARCH_FIELDS) - set(_RUN_FIELDS))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(unknown)}; search keys: "
            f"{', '.join(_SEARCH_FIELDS)}; run keys: {', '.join(_RUN_FIELDS)}"
        )
    run = from_dict(RunConfig, {k: v for k, v in data.items() if k in _RUN_FIELDS})
    search = {k: v for k, v in data.items() if k in _SEARCH_FIELDS}
    return from_dict(SearchConfig, {**search, "run": to_dict(run)})


def load_search_config(path: str | Path, sets: Sequence[str] = ()) -> SearchConfig:
    """Read a search config file, then apply ``KEY=VALUE`` overrides (values in YAML).

    ``KEY`` is a dotted run key (``train.n_epochs=2``), a search key (``num_samples=4``), or
    ``search_space.<dotted key>`` with a distribution (``search_space.train.lr={choice:
    [0.001, 0.01]}``).
    """
    data = load_yaml(path)
    for item in sets:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        value = yaml.safe_load(raw)
        if key.startswith("search_space."):
            space = data.setdefault("search_space", {})
            if not isinstance(space, dict):
                raise ConfigError(f"search_space must be a mapping, got {space!r}")
            space[key.removeprefix("search_space.")] = value
        else:
            set_dotted(data, key, value)
    return search_config_from_dict(data)


def _plain(value: Any) -> Any:
    """A sampled value as plain Python (Ray Tune draws numpy numbers)."""
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, list | dict):
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def trial_config(config: SearchConfig, values: dict[str, Any]) -> RunConfig:
    """The run config of a trial: the shared settings with the sampled ``values`` (dotted key
    -> value) set, unresolved; ``name`` is cleared (it named the search)."""
    return _with_values(to_dict(config.run), values)


def _with_values(run: dict[str, Any], values: dict[str, Any]) -> RunConfig:
    data = {**copy.deepcopy(run), "name": None}
    for key, value in values.items():
        set_dotted(data, key, _plain(value))
    return from_dict(RunConfig, data)


def check_search(config: SearchConfig) -> list[RunConfig]:
    """Check, before any trial starts, that every search-space key is a config key and every
    value it can take gives a valid run, and that ``metric`` can exist for it.

    Each value of each key is checked with the other keys at their first value (ranges: their
    two ends), so a typo or an out-of-range value fails in milliseconds, naming the key.

    Returns:
        the resolved run configs checked; the first has every key at its first value.
    """
    distributions = config.distributions()
    first = {key: d.extremes()[0] for key, d in distributions.items()}
    probes = [first] + [
        {**first, key: value} for key, d in distributions.items() for value in d.extremes()[1:]
    ]
    checked = []
    for probe in probes:
        try:
            run = resolve_config(trial_config(config, probe))
            check_metric(run, config.metric)
        except ConfigError as err:
            shown = ", ".join(f"{k}={v!r}" for k, v in probe.items())
            raise ConfigError(f"search_space ({shown}): {err}") from err
        checked.append(run)
    return checked


def check_metric(run: RunConfig, metric: str) -> None:
    """Raise a :class:`ConfigError` when the protocol of ``run`` cannot give ``metric``: no
    validation split, or no labelled anomalies for one that needs them (``val/auroc``)."""
    if run.data.val_fraction == 0:
        raise ConfigError(
            f"metric {metric} is measured on the validation split, and data.val_fraction is 0; "
            "set data.val_fraction > 0 (e.g. 0.1)"
        )
    if VALIDATION_METRICS[metric] and run.data.resolved_anomaly_ratio == 0:
        raise ConfigError(
            f"metric {metric} needs labelled anomalies in the validation split, and "
            "data.anomaly_ratio is 0, so there are none; set data.anomaly_ratio > 0 (e.g. 0.05): "
            "a data.val_fraction share of the labelled anomalies is then held out for validation"
        )


def check_validation_split(run: RunConfig, metric: str) -> None:
    """Build ``run``'s split and check its validation part can give ``metric`` (the rounding
    of ``val_fraction`` x labelled anomalies can leave none)."""
    _, split = prepare_data(run)
    counts = split.counts()
    if VALIDATION_METRICS[metric] and not split.val_targets.any():
        n_labelled = counts["train_labelled_anomalies"] + counts["val_labelled_anomalies"]
        raise ConfigError(
            f"metric {metric} needs labelled anomalies in the validation split, and it holds "
            f"none: data.val_fraction={run.data.val_fraction} of {n_labelled} labelled "
            "anomalies rounds to 0; raise data.anomaly_ratio or data.val_fraction"
        )


class ReportEpochs(Callback):
    """Reports every epoch's metrics (``train/*``, ``val/*``) through ``report``, with
    ``epoch`` (1-based) and :data:`FINAL_KEY` (True on the last epoch).

    An epoch is reported when the next one starts, or when training ends: a callback's
    ``on_validation_epoch_end`` runs before the module logs that epoch's validation metrics,
    and only at the end of training is it known that an epoch was the last (knn stops itself
    after one epoch). The scheduler thus hears of epoch k when epoch k + 1 starts.

    Args:
        report: called with each epoch's metrics (``ray.tune.report`` in a trial).
        metric: the metric the search optimises; an epoch without it is an error.
    """

    def __init__(self, report: Callable[[dict[str, Any]], None], metric: str) -> None:
        self.report = report
        self.metric = metric
        self._pending: int | None = None  # the validated epoch not reported yet

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._pending = trainer.current_epoch

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush(trainer, final=False)

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush(trainer, final=True)

    def _flush(self, trainer: Trainer, final: bool) -> None:
        if self._pending is None:
            return
        metrics = epoch_metrics(trainer.callback_metrics)
        if self.metric not in metrics:
            raise TrainingError(
                f"epoch {self._pending + 1} logged no {self.metric} (logged: "
                f"{', '.join(metrics) or 'nothing'}); the validation split must hold normal "
                "images and labelled anomalies"
            )
        self.report({**metrics, "epoch": self._pending + 1, FINAL_KEY: final})
        self._pending = None


def train_trial(values: dict[str, Any], *, run: dict[str, Any], metric: str, threads: int) -> None:
    """One trial, inside a Ray worker: train the run config ``run`` with ``values`` set on its
    training split, reporting every epoch's validation metrics to Ray Tune.

    The trial writes no files (no checkpoints, no logs; ``train.logger`` and
    ``train.progress_bar`` are ignored): Ray Tune keeps every epoch it reported, in
    ``tune/<trial>/`` of the search's directory.

    Args:
        values: the sampled settings, dotted key -> value.
        run: the shared run config, as :func:`anomalia.config.to_dict` gives it.
        metric: the metric the search optimises.
        threads: torch threads (the trial's cpus).
    """
    import torch
    from ray import tune

    torch.set_num_threads(threads)
    config = _with_values(run, values)
    train = dataclasses.replace(config.train, progress_bar=False, logger=["csv"])
    fit_on_validation(
        dataclasses.replace(config, train=train),
        callbacks=[ReportEpochs(tune.report, metric)],
    )


@dataclass(frozen=True)
class TrialRow:
    """One trial's outcome, a row of ``trials.csv``.

    Attributes:
        number: 1-based, in Ray Tune's trial order.
        values: the sampled settings, dotted key -> value.
        epochs: epochs it reported.
        value: the metric at its last reported epoch (None: it reported none).
        completed: it reported its last epoch (it was neither stopped early nor failed).
        error: why it failed, or None.
    """

    number: int
    values: dict[str, Any]
    epochs: int
    value: float | None
    completed: bool
    error: str | None = None

    @property
    def stopped_early(self) -> bool:
        """Stopped by the scheduler before its last epoch."""
        return not self.completed and self.error is None


def _error_text(error: Any) -> str | None:
    """One line saying why a trial failed (Ray wraps the trial's exception)."""
    if error is None:
        return None
    if isinstance(error, str):
        return error
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def trial_row(
    number: int, values: dict[str, Any], last: dict[str, Any] | None, metric: str, error: Any
) -> TrialRow:
    """A :class:`TrialRow` from a trial's sampled ``values`` and last reported result."""
    last = last or {}
    value = last.get(metric)
    return TrialRow(
        number=number,
        values={k: _plain(v) for k, v in values.items()},
        epochs=int(last.get("training_iteration", 0) or 0),
        value=None if value is None else float(value),
        completed=bool(last.get(FINAL_KEY, False)) and error is None,
        error=_error_text(error),
    )


def describe_values(values: dict[str, Any]) -> str:
    """``model.abc_weight=0.05, train.lr=0.001``."""
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )


def trial_line(row: TrialRow, metric: str) -> str:
    """One line for a finished trial."""
    values = describe_values(row.values)
    if row.error is not None:
        return f"trial {row.number}: {values}: failed after {row.epochs} epoch(s): {row.error}"
    shown = "no value" if row.value is None else f"{metric} {row.value:.4f}"
    how = "all its" if row.completed else "stopped early by ASHA after"
    return f"trial {row.number}: {values}: {shown} ({how} {row.epochs} epoch(s))"


def choose_best(rows: Sequence[TrialRow], mode: str) -> TrialRow:
    """The trial with the best metric at its last epoch, among trials that ran every epoch.

    A trial that ASHA stopped early cannot win, even with a better value: its value is that of
    a shorter training, which is not what the chosen settings will be trained for. Ties go to
    the first trial.

    Raises:
        TrainingError: no trial ran every epoch.
    """
    complete = [r for r in rows if r.completed and r.value is not None and math.isfinite(r.value)]
    if not complete:
        errors = [r.error for r in rows if r.error]
        why = f"; first error: {errors[0]}" if errors else ""
        raise TrainingError(f"no trial of {len(rows)} ran every epoch{why}")
    sign = 1.0 if mode == "max" else -1.0
    return max(complete, key=lambda r: (sign * (r.value or 0.0), -r.number))


@dataclass
class SearchResult:
    """What a finished search produced.

    Attributes:
        config: the search.
        rows: one per trial, in trial order.
        best: the chosen trial.
        best_config: its resolved run config, as written to ``best.yaml``.
    """

    config: SearchConfig
    rows: list[TrialRow]
    best: TrialRow
    best_config: RunConfig

    @property
    def trials_csv(self) -> Path:
        return self.config.directory / TRIALS_CSV

    @property
    def best_yaml(self) -> Path:
        return self.config.directory / BEST_YAML


Trainable = Callable[[dict[str, Any]], None]


def run_search(
    config: SearchConfig,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    trainable: Trainable | None = None,
    echo: Callable[[str], None] = print,
) -> SearchResult:
    """Run the search on Ray Tune, choose the best trial on validation data, and write
    ``trials.csv`` and ``best.yaml``; the test split is not touched (see :func:`score_test_set`).

    Every setting is checked first (:func:`check_search`), and the validation split of the
    first trial is built to check that it can give ``metric``, so that a config that cannot
    work fails before any trial starts. The best trial is the one with the best metric at its
    last epoch among trials that ran every epoch (:func:`choose_best`).

    Args:
        config: the search.
        address: the Ray cluster (``auto``: the one this machine joined with ``ray start``);
            None starts a Ray instance on this machine only.
        num_cpus: CPUs of that private instance (default: all).
        trainable: what a trial runs, called with the sampled values (dotted key -> value);
            it must report with ``ray.tune.report`` a dict holding ``metric`` once per epoch,
            and :data:`FINAL_KEY` True on its last. Default: :func:`train_trial` (the data
            are then checked as above).
        echo: where the line of each finished trial goes.

    Raises:
        ConfigError: Ray is missing, a setting is invalid, the metric cannot exist for the
            config, or the search's directory already holds a finished search.
        TrainingError: no trial ran every epoch.
    """
    require_ray("anomalia tune")
    directory = config.directory
    if (directory / TRIALS_CSV).exists() or (directory / BEST_YAML).exists():
        raise ConfigError(f"{directory} already holds a search; choose another name or remove it")
    checked = check_search(config)
    max_epochs = max(run.train.n_epochs for run in checked)
    if config.scheduler == "asha" and config.grace_period > max_epochs:
        raise ConfigError(
            f"grace_period={config.grace_period} is more than the {max_epochs} epoch(s) of a "
            "trial (train.n_epochs); lower it"
        )
    search_alg = _searcher(config)
    if trainable is None:
        check_validation_split(checked[0], config.metric)
    threads = max(1, int(config.cpus))
    directory.mkdir(parents=True, exist_ok=True)
    with ray_session(address, "anomalia tune", num_cpus=num_cpus):
        from ray import tune

        function: Any = trainable
        if function is None:
            function = tune.with_parameters(
                train_trial, run=to_dict(config.run), metric=config.metric, threads=threads
            )
        scheduler = None
        if config.scheduler == "asha":
            scheduler = tune.schedulers.ASHAScheduler(
                time_attr="training_iteration",
                max_t=max_epochs,
                grace_period=config.grace_period,
                reduction_factor=config.reduction_factor,
            )
        tuner = tune.Tuner(
            tune.with_resources(function, {"cpu": config.cpus, "gpu": config.gpus}),
            param_space={k: d.to_tune(tune) for k, d in config.distributions().items()},
            tune_config=tune.TuneConfig(
                metric=config.metric,
                mode=config.mode,
                search_alg=search_alg,
                scheduler=scheduler,
                num_samples=config.num_samples,
                trial_dirname_creator=_trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=TUNE_DIR,
                storage_path=str(directory.resolve()),
                verbose=0,
                callbacks=[_trial_lines(config, echo)],
            ),
        )
        grid = tuner.fit()
        keys = list(config.search_space)
        results = [grid[i] for i in range(len(grid))]  # in Tune's trial order
        rows = [
            trial_row(
                i + 1, {k: (r.config or {}).get(k) for k in keys}, r.metrics, config.metric, r.error
            )
            for i, r in enumerate(results)
        ]
    return _finish(config, rows)


def _finish(config: SearchConfig, rows: list[TrialRow]) -> SearchResult:
    """Write ``trials.csv``, choose, write ``best.yaml``."""
    best = choose_best(rows, config.mode)
    keys = list(config.search_space)
    write_csv(
        config.directory / TRIALS_CSV,
        [
            {
                "trial": r.number,
                **r.values,
                "epochs": r.epochs,
                config.metric: "" if r.value is None else f"{r.value:.6g}",
                "stopped_early": int(r.stopped_early),
                "error": r.error or "",
                "chosen": int(r is best),
            }
            for r in rows
        ],
        ["trial", *keys, "epochs", config.metric, "stopped_early", "error", "chosen"],
    )
    chosen = dataclasses.replace(
        resolve_config(trial_config(config, best.values)),
        output_dir=str(config.directory),
        name=None,
    )
    header = (
        f"# Chosen by `anomalia tune` ({config.name}): {describe_values(best.values)}, "
        f"{config.metric} {best.value:.4f} on the validation split at the last of "
        f"{best.epochs} epoch(s).\n"
        f"# Train it: anomalia train --config {config.directory / BEST_YAML}\n"
    )
    with atomic_open(config.directory / BEST_YAML) as handle:
        handle.write(header + dump_yaml(to_dict(chosen)))
    return SearchResult(config=config, rows=rows, best=best, best_config=chosen)


def score_test_set(result: SearchResult) -> RunResult:
    """Train the chosen settings once more and score the test split, once, in an ordinary run
    directory (``<search directory>/<method>/<dataset>/class<k>/best``): what ``anomalia train
    --config best.yaml --name best`` writes. Its test metrics were measured after the choice,
    which saw validation data only."""
    return run_experiment(dataclasses.replace(result.best_config, name=BEST_RUN_NAME))


def _trial_dirname(trial: Any) -> str:
    return str(trial.trial_id)


def _searcher(config: SearchConfig) -> Any:
    """Ray Tune's searcher named by ``search_alg`` (None: the basic variant generator)."""
    if config.search_alg in VARIANT_GENERATORS:
        return None
    require_ray("anomalia tune")
    from ray.tune.search import SEARCH_ALG_IMPORT, create_searcher

    if config.search_alg not in SEARCH_ALG_IMPORT:
        raise ConfigError(
            f"search_alg must be one of {', '.join(SEARCH_ALG_IMPORT)}; got {config.search_alg!r}"
        )
    try:
        return create_searcher(config.search_alg)
    except (ImportError, AssertionError) as err:  # Ray's searchers assert their package exists
        raise ConfigError(
            f"search_alg {config.search_alg!r} needs a package that is not installed ({err}); "
            "install it, or use search_alg variant_generator"
        ) from err


def _trial_lines(config: SearchConfig, echo: Callable[[str], None]) -> Any:
    """A Ray Tune callback (on the driver) that echoes a line as each trial ends."""
    from ray import tune

    keys = list(config.search_space)
    total = config.n_trials

    class TrialLines(tune.Callback):
        def __init__(self) -> None:
            self.n_done = 0

        def _line(self, trial: Any, error: Any) -> None:
            self.n_done += 1
            suffix = str(trial.trial_id).rsplit("_", 1)[-1]  # Tune numbers its trials
            number = int(suffix) + 1 if suffix.isdigit() else self.n_done
            values = {k: trial.config.get(k) for k in keys}
            row = trial_row(number, values, trial.last_result, config.metric, error)
            echo(f"[{self.n_done}/{total}] {trial_line(row, config.metric)}")

        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            self._line(trial, None)

        def on_trial_error(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            self._line(trial, trial.get_error() or "failed (see trials.csv)")

    return TrialLines()


__all__ = [
    "FINAL_KEY",
    "VALIDATION_METRICS",
    "Distribution",
    "ReportEpochs",
    "SearchConfig",
    "SearchResult",
    "TrialRow",
    "check_search",
    "choose_best",
    "load_search_config",
    "run_search",
    "score_test_set",
    "train_trial",
]
