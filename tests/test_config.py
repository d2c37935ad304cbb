import pytest

from anomalia.config import (
    RunConfig,
    TrainConfig,
    dump_yaml,
    from_dict,
    load_yaml,
    set_dotted,
    to_dict,
)
from anomalia.errors import ConfigError


def test_round_trip_yaml(tmp_path):
    config = RunConfig(method="autoencoder", model={"latent_dim": 8})
    config.data.normal_class = 4
    config.train.betas = [0.5, 0.999]
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(to_dict(config)))
    assert from_dict(RunConfig, load_yaml(path)) == config


def test_unknown_key_is_named():
    with pytest.raises(ConfigError, match=r"train\.n_epoch") as info:
        from_dict(RunConfig, {"train": {"n_epoch": 3}})
    assert "n_epochs" in str(info.value)  # the valid keys are listed


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"train": {"n_epochs": "ten"}}, "train.n_epochs: expected an integer"),
        ({"train": {"lr": True}}, "train.lr: expected a number"),
        ({"data": {"anomaly_classes": [1, "x"]}}, "data.anomaly_classes\\[1\\]"),
        ({"train": {"deterministic": "yes"}}, "true or false"),
        ({"data": "fashion"}, "data: expected a mapping"),
    ],
)
def test_wrong_types_are_named(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(RunConfig, data)


def test_int_accepted_for_float():
    assert from_dict(TrainConfig, {"lr": 1}).lr == 1.0


def test_load_yaml_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(bad)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml(scalar)
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml(tmp_path / "missing.yaml")


def test_set_dotted():
    data = {"train": {"lr": 1}}
    set_dotted(data, "train.seed", 3)
    set_dotted(data, "model.latent_dim", 4)
    assert data == {"train": {"lr": 1, "seed": 3}, "model": {"latent_dim": 4}}
    with pytest.raises(ConfigError):
        set_dotted(data, "train.lr.x", 1)


def test_shipped_configs_are_valid():
    from pathlib import Path

    from anomalia.experiment import load_run_config, resolve_config

    root = Path(__file__).parents[1] / "configs"
    paths = sorted(p for p in root.glob("**/*.yaml") if "benchmarks" not in p.parts)
    assert len(paths) >= 4
    for path in paths:
        resolve_config(load_run_config(path))


def test_shipped_benchmark_configs_are_valid():
    from pathlib import Path

    from anomalia.benchmark import cells, load_benchmark_config

    root = Path(__file__).parents[1] / "configs" / "benchmarks"
    grids = {p.stem: load_benchmark_config(p) for p in root.glob("*.yaml")}
    assert {"smoke", "study", "deep-sad"} <= set(grids)
    assert len(cells(grids["study"])) == 30
    # six methods x five gamma_l x three seeds x ten classes, less the classifier's gamma_l = 0
    assert len(cells(grids["deep-sad"])) == (6 * 5 - 1) * 3 * 10
    assert len(cells(grids["deep-sad-knn"])) == 5 * 3 * 10
    assert grids["deep-sad"].n_known_anomaly_classes == [1]
