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

    from anomalia.experiment import resolve_config

    root = Path(__file__).parents[1] / "configs"
    # run configs only: grids (benchmarks/) and searches (tune/) have tests of their own
    paths = sorted(p for p in root.glob("**/*.yaml") if not {"benchmarks", "tune"} & set(p.parts))
    assert len(paths) >= 4
    for path in paths:
        resolve_config(RunConfig.from_yaml(path))


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


@pytest.mark.parametrize(
    ("method", "model", "match"),
    [
        ("deep_sad", {"width": 0}, r"model\.width must be at least 1, got 0"),
        ("deep_sad", {"n_pretrain_epochs": -1}, r"model\.n_pretrain_epochs must be at least 0"),
        ("dual_gan", {"patch_size": 0}, r"model\.patch_size must be at least 2, got 0"),
        ("knn", {"blur_sigma": -1}, r"model\.blur_sigma must be at least 0"),
        ("deep_sad", {"eta": 0}, r"model\.eta must be greater than 0"),
    ],
)
def test_model_fields_check_their_ranges(method, model, match):
    from anomalia.experiment import resolve_config

    with pytest.raises(ConfigError, match=match):
        resolve_config(RunConfig(method=method, model=model))


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"data": {"anomaly_ratio": 1.5}}, r"data\.anomaly_ratio must be less than 1, got 1.5"),
        ({"data": {"val_fraction": -0.1}}, r"data\.val_fraction must be at least 0"),
        ({"data": {"normal_class": 10}}, r"data\.normal_class must be a class of fashion_mnist"),
        ({"data": {"image_size": 32}}, r"data\.image_size applies to the image-folder"),
        ({"data": {"anomaly_classes": [0, 1]}}, r"includes the normal class 0"),
        ({"train": {"batch_size": 0}}, r"train\.batch_size must be at least 1, got 0"),
        ({"train": {"betas": [0.9]}}, r"train\.betas must hold two numbers"),
        ({"train": {"lr": 0}}, r"train\.lr must be greater than 0"),
    ],
)
def test_data_and_train_fields_check_their_ranges(data, match):
    with pytest.raises(ConfigError, match=match):
        from_dict(RunConfig, data)


def test_cross_section_rule_runs_before_data_loads():
    from anomalia.experiment import resolve_config

    config = RunConfig(method="deep_sad", model={"n_pretrain_epochs": 5})
    config.train.n_epochs = 5
    with pytest.raises(ConfigError, match=r"train\.n_epochs \(5\) must exceed"):
        resolve_config(config)


def test_benchmark_grid_fails_at_once_on_a_bad_value(tmp_path):
    from anomalia.benchmark import load_benchmark_config

    grid = tmp_path / "grid.yaml"
    grid.write_text("methods: [knn]\nanomaly_ratios: [0.05, 1.5, 0.1]\n")
    with pytest.raises(ConfigError, match=r"anomaly_ratios must be less than 1, got 1.5"):
        load_benchmark_config(grid)
    # a bad value deep in the grid (a method override of one method) is found too
    grid.write_text(
        "methods: [knn, autoencoder]\nmethod_overrides: {autoencoder: {model: {latent_dim: 0}}}\n"
    )
    with pytest.raises(ConfigError, match=r"model\.latent_dim must be at least 1"):
        load_benchmark_config(grid)


def test_every_config_field_documents_itself_and_becomes_a_flag():
    import dataclasses

    from anomalia.cli import build_parser, config_flags
    from anomalia.config import DataConfig
    from anomalia.methods import METHODS

    flags = config_flags()
    for section, cls in [("data", DataConfig), ("train", TrainConfig)]:
        for f in dataclasses.fields(cls):
            assert f.metadata["help"], f.name
            assert f"{section}.{f.name}" in flags
    for method in METHODS.values():
        for f in dataclasses.fields(method.config_class):
            assert f"model.{f.name}" in flags
    train = build_parser()._subparsers._group_actions[0].choices["train"]  # type: ignore[union-attr]
    text = train.format_help()
    assert "--normal-class" in text and "(default 0)" in text
    assert "--abc-weight" in text and "autoencoder 0.1" in text and "dual_gan 0.5" in text


def test_flags_reach_the_config():
    from anomalia.cli import build_parser, config_from_args

    args = build_parser().parse_args(
        ["train", "--normal-class", "3", "--no-download", "--betas", "0.5,0.99", "--k", "5",
         "--method", "knn", "--logger", "csv,tensorboard", "--devices", "2"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.data.normal_class == 3 and config.data.download is False
    assert config.train.betas == [0.5, 0.99] and config.train.logger == ["csv", "tensorboard"]
    assert config.model == {"k": 5} and config.method == "knn" and config.train.devices == 2
