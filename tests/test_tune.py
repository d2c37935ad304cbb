"""``anomalia tune``: the search config and its errors, per-epoch reporting, the choice of the
best trial, a search on a known objective, and the command end to end on IDX files."""

from __future__ import annotations

import csv
import importlib.util
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from anomalia.cli import main
from anomalia.cluster import tune as tune_module
from anomalia.cluster.tune import (
    FINAL_KEY,
    VALIDATION_METRICS,
    ReportEpochs,
    TrialRow,
    check_search,
    choose_best,
    load_search_config,
    run_search,
)
from anomalia.config import RunConfig
from anomalia.detector import Detector
from anomalia.errors import ConfigError, TrainingError

needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="needs pip install 'anomalia[ray]'"
)
CONFIGS = Path(__file__).parents[1] / "configs" / "tune"
N_EPOCHS = 4  # of the synthetic objective


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def search_yaml(tmp_path):
    """A valid search on the autoencoder; tests add or change keys with --set."""
    return write(
        tmp_path / "search.yaml",
        f"""\
        method: autoencoder
        train: {{n_epochs: 2}}
        output_dir: {tmp_path / "out"}
        name: s
        search_space:
          model.abc_weight: {{grid: [0.01, 0.1]}}
        """,
    )


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_search_configs_parse_and_check(path):
    config = load_search_config(path)
    runs = check_search(config)  # resolves one run per value; loads no data
    assert config.metric in VALIDATION_METRICS and runs


def test_the_abc_weight_search_is_the_studys_setting_with_every_value():
    config = load_search_config(CONFIGS / "abc_weight.yaml")
    runs = check_search(config)
    weights = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]
    assert [r.model["abc_weight"] for r in runs] == weights and config.n_trials == 7
    assert all(r.train.n_epochs == 15 and r.data.anomaly_ratio == 0.05 for r in runs)
    assert config.scheduler == "none"  # every value runs all its epochs in each class


def test_config_keys_and_defaults(search_yaml):
    config = load_search_config(search_yaml, ["train.lr=0.01", "num_samples=3"])
    assert config.run.train.lr == 0.01 and config.run.method == "autoencoder"
    assert config.metric == "val/auroc" and config.mode == "max" and config.num_samples == 3
    assert config.directory == Path(config.run.output_dir) / "s"
    assert config.n_trials == 6  # 2 grid points x 3 samples
    widened = load_search_config(
        search_yaml, ["search_space.train.lr={loguniform: [1.0e-4, 1.0e-2]}"]
    )
    assert set(widened.distributions()) == {"model.abc_weight", "train.lr"}


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["search_spce={}"], "unknown config key(s) search_spce"),
        (["search_space.model.abc_wieght={grid: [1]}"], "model.abc_wieght"),
        (["search_space.train.lrr={choice: [0.1]}"], "train.lrr"),
        (["search_space.model.abc_weight={gaussian: [0, 1]}"], "must be one of {grid"),
        (["search_space.model.abc_weight={grid: []}"], "non-empty list"),
        (["search_space.model.abc_weight={uniform: [1, 0]}"], "lo < hi"),
        (["search_space.model.abc_weight={loguniform: [0, 1]}"], "needs lo > 0"),
        (["search_space.train.n_epochs={randint: [1.5, 3]}"], "two integers"),
        (["search_space.train.lr={uniform: [1e-4, 0.01]}"], "write 1.0e-4 or 0.0001"),
        (["search_space.train.n_epochs={uniform: [1, 3]}"], "train.n_epochs: expected an integer"),
        (["search_space.model.abc_weight={grid: [0.1, -1]}"], "model.abc_weight must be at least"),
        (["search_space.output_dir={grid: [a, b]}"], "says where results go"),
        (["metric=test/auroc"], "must be a validation metric"),
        (["mode=maximum"], "mode: expected one of"),
        (["scheduler=hyperband"], "scheduler: expected one of"),
        (["reduction_factor=1"], "reduction_factor must be greater than 1"),
        (["resources={cpu: 1}"], "resources has unknown key(s) ['cpu']"),
        (["resources={cpus: 0}"], "resources must ask for cpus > 0 and gpus >= 0"),
        (["resources={gpus: one}"], "resources must ask for cpus > 0"),
        (["search_alg=optuna"], "cannot run a grid (model.abc_weight)"),
        (["train.lrr=1"], "unknown config key(s) train.lrr"),
        (["data.val_fraction=0"], "data.val_fraction is 0"),
    ],
)
def test_bad_configs_fail_naming_the_key(search_yaml, sets, message):
    with pytest.raises(ConfigError) as err:
        check_search(load_search_config(search_yaml, sets))
    assert message in str(err.value)


def test_a_metric_that_cannot_exist_fails_up_front(search_yaml):
    config = load_search_config(search_yaml, ["data.anomaly_ratio=0"])
    with pytest.raises(
        ConfigError, match=r"val/auroc needs labelled anomalies .* data\.anomaly_ratio is 0"
    ):
        check_search(config)
    # a search over anomaly_ratio fails on the value 0 alone
    grid = ["search_space.data.anomaly_ratio={grid: [0.05, 0.0]}"]
    with pytest.raises(ConfigError, match=r"data.anomaly_ratio=0.0.*needs labelled anomalies"):
        check_search(load_search_config(search_yaml, grid))
    # the mean normal score needs no labelled anomalies
    check_search(
        load_search_config(search_yaml, ["data.anomaly_ratio=0", "metric=val/normal_score"])
    )


def test_missing_ray_says_how_to_install_it(search_yaml, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(ConfigError, match=r"anomalia tune needs Ray.*anomalia\[ray\]"):
        run_search(load_search_config(search_yaml))
    assert main(["tune", str(search_yaml)]) == 2
    assert "pip install 'anomalia[ray]'" in capsys.readouterr().err


@needs_ray
def test_a_validation_split_without_anomalies_fails_before_any_trial(idx_dir, search_yaml):
    # 80 normal images, gamma_l 0.05: 4 labelled anomalies, and 10 % of 4 rounds to none
    config = load_search_config(search_yaml, ["data.dataset=idx", f"data.data_dir={idx_dir}"])
    with pytest.raises(ConfigError, match=r"rounds to 0; raise data\.anomaly_ratio"):
        run_search(config)
    assert not config.directory.exists()


@needs_ray
def test_a_finished_search_is_not_overwritten(search_yaml):
    config = load_search_config(search_yaml)
    config.directory.mkdir(parents=True)
    (config.directory / "trials.csv").write_text("trial\n")
    with pytest.raises(ConfigError, match="already holds a search; choose another name"):
        run_search(config)


@needs_ray
def test_unknown_or_missing_searcher(search_yaml):
    space = "search_space.model.abc_weight={choice: [0.01, 0.1]}"
    with pytest.raises(ConfigError, match="search_alg must be one of"):
        run_search(load_search_config(search_yaml, [space, "search_alg=nosuch"]))
    if importlib.util.find_spec("hyperopt") is None:
        with pytest.raises(ConfigError, match=r"hyperopt.*not installed"):
            run_search(load_search_config(search_yaml, [space, "search_alg=hyperopt"]))


@pytest.mark.parametrize(("method", "n_reports"), [("autoencoder", 3), ("knn", 1)])
def test_every_epoch_is_reported_and_the_last_is_marked(method, n_reports, synthetic_split):
    """Epoch k's validation metrics, not epoch k-1's; knn (one pass) reports once."""
    reports: list[dict] = []
    n = 120
    images = synthetic_split["train_images"][-n:]  # normals and the labelled anomalies
    labels = synthetic_split["train_targets"][-n:]
    detector = Detector(method, n_epochs=3, batch_size=32, progress_bar=False, accelerator="cpu")
    detector.fit(
        images,
        labels,
        val_images=images,
        val_labels=labels,
        callbacks=[ReportEpochs(reports.append, "val/auroc")],
    )
    assert [r["epoch"] for r in reports] == list(range(1, n_reports + 1))
    assert [r[FINAL_KEY] for r in reports] == [False] * (n_reports - 1) + [True]
    assert all(0 <= r["val/auroc"] <= 1 for r in reports)
    # the last report is the trained detector's own validation AUROC
    from anomalia.evaluation import auroc

    final = auroc(labels, detector.decision_function(images))
    assert reports[-1]["val/auroc"] == pytest.approx(final, abs=1e-6)
    if method == "autoencoder":  # train/* means of the reported epoch arrive with it
        assert "train/loss" in reports[0]


def row(number, value, completed=True, error=None):
    return TrialRow(number, {"x": number}, 4 if completed else 1, value, completed, error)


def test_choose_best_ignores_trials_stopped_early():
    rows = [row(1, 0.7), row(2, 0.99, completed=False), row(3, 0.8), row(4, None, False, "boom")]
    assert choose_best(rows, "max").number == 3
    assert rows[1].stopped_early and not rows[3].stopped_early
    assert choose_best(rows, "min").number == 1
    assert choose_best([row(1, 0.8), row(2, 0.8)], "max").number == 1  # ties: the first
    with pytest.raises(TrainingError, match="no trial of 2 ran every epoch; first error: boom"):
        choose_best([row(1, 0.9, completed=False), row(2, None, False, "boom")], "max")


def quadratic_objective() -> Callable[[dict], None]:
    """A trial of the synthetic search: best at abc_weight 3, by a wide margin at every epoch.

    Made in a function so that Ray sends the function itself to its workers, which then need
    not import this test module (and torch with it): seconds per trial.
    """

    def objective(values: dict) -> None:
        from ray import tune

        weight = values["model.abc_weight"]
        for epoch in range(1, N_EPOCHS + 1):
            value = -((weight - 3) ** 2) + 0.01 * epoch
            tune.report({"val/auroc": value, FINAL_KEY: epoch == N_EPOCHS})

    return objective


@needs_ray
def test_search_finds_the_known_best_value(tmp_path):
    # Two trials at a time (two CPUs), the best first: ASHA stops abc_weight 1 and 0 at their
    # first epoch, when 3, 4 and 2 have set the bar.
    config = write(
        tmp_path / "quadratic.yaml",
        f"""\
        train: {{n_epochs: {N_EPOCHS}}}
        output_dir: {tmp_path}
        name: quadratic
        search_space:
          model.abc_weight: {{grid: [3, 4, 2, 1, 0]}}
        scheduler: asha
        grace_period: 1
        reduction_factor: 2
        """,
    )
    lines: list[str] = []
    result = run_search(
        load_search_config(config), num_cpus=2, trainable=quadratic_objective(), echo=lines.append
    )
    assert result.best.values == {"model.abc_weight": 3}
    assert result.best.completed and result.best.epochs == N_EPOCHS
    assert result.best.value == pytest.approx(0.01 * N_EPOCHS)
    assert any(r.stopped_early for r in result.rows)
    assert len(lines) == 5 and any("stopped early by ASHA" in line for line in lines)
    rows = list(csv.DictReader(result.trials_csv.open()))
    assert [r["model.abc_weight"] for r in rows] == ["3", "4", "2", "1", "0"]
    for r in rows:  # a trial ASHA stopped ran fewer epochs, and is marked
        assert (r["stopped_early"] == "1") == (int(r["epochs"]) < N_EPOCHS)
    assert [r["chosen"] for r in rows] == ["1", "0", "0", "0", "0"]
    best = RunConfig.from_yaml(result.best_yaml)
    assert best.model["abc_weight"] == 3.0 and best.name is None
    assert (tmp_path / "quadratic" / "tune").is_dir()  # Tune's records stay in the search


@needs_ray
def test_tune_command_end_to_end(idx_dir, tmp_path, capsys):
    out = tmp_path / "out"
    config = write(
        tmp_path / "tune.yaml",
        f"""\
        method: autoencoder
        data:
          dataset: idx
          data_dir: {idx_dir}
          normal_class: 2
          anomaly_ratio: 0.2   # 20 labelled anomalies, 4 of them held out for validation
          val_fraction: 0.2
        train: {{n_epochs: 2, batch_size: 16, accelerator: cpu}}
        plots: false
        output_dir: {out}
        name: e2e
        search_space:
          model.abc_weight: {{grid: [0.01, 0.1]}}
        resources: {{cpus: 1}}
        """,
    )
    code = main(["tune", str(config), "--set", "train.lr=0.002"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    search = out / "e2e"
    best = RunConfig.from_yaml(search / "best.yaml")
    assert best.model["abc_weight"] in (0.01, 0.1) and best.train.lr == 0.002
    rows = list(csv.DictReader((search / "trials.csv").open()))
    assert len(rows) == 2 and sum(r["chosen"] == "1" for r in rows) == 1
    run = search / "autoencoder" / "idx" / "class2" / "best"
    assert (run / "metrics.json").is_file() and (run / "model.pt").is_file()
    assert "chosen on validation data: model.abc_weight=" in printed
    assert "test AUROC of the chosen settings, measured once after the choice" in printed
    assert printed.count("trial ") >= 2


def test_the_module_imports_without_ray():
    """Nothing in anomalia.cluster.tune imports Ray at module level."""
    source = Path(tune_module.__file__).read_text()
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in top_level if "ray" in line.split()[1]]
