"""The CLI in-process, end to end, on a synthetic dataset written as IDX files."""

import csv
import json

import pytest

from anomalia.cli import main

FAST = ["--n-epochs", "2", "--batch-size", "16", "--no-progress-bar", "--accelerator", "cpu"]


@pytest.fixture(scope="module")
def trained_run(idx_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    code = main(
        [
            "train",
            "--dataset",
            "idx",
            "--data-dir",
            str(idx_dir),
            "--normal-class",
            "2",
            "--output-dir",
            str(out),
            "--name",
            "e2e",
            *FAST,
        ]
    )
    assert code == 0
    return out / "autoencoder" / "idx" / "class2" / "e2e"


def test_train_writes_complete_run_directory(trained_run, capsys):
    for name in (
        "config.yaml",
        "run.json",
        "split.npz",
        "model.pt",
        "metrics.json",
        "scores.csv",
        "logs/metrics.csv",
        "checkpoints/last.ckpt",
        "plots/roc.png",
        "plots/score_histogram.png",
        "plots/reconstructions.png",
    ):
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["auroc"] >= 0.8  # seeded synthetic stripes; observed ~0.99
    assert 0 <= metrics["f1"] <= 1
    run = json.loads((trained_run / "run.json").read_text())
    assert run["status"] == "finished" and run["seed"] == 0 and "torch" in run["versions"]
    config_text = (trained_run / "config.yaml").read_text()
    assert "# torch:" in config_text and "normal_class: 2" in config_text
    rows = list(csv.DictReader((trained_run / "scores.csv").open()))
    assert len(rows) == 200
    assert {r["label"] for r in rows if r["true_class"] == "2"} == {"0"}
    assert {r["label"] for r in rows if r["true_class"] != "2"} == {"1"}


def test_evaluate_reproduces(trained_run, capsys):
    assert main(["evaluate", str(trained_run), "--accelerator", "cpu"]) == 0
    assert "reproduced" in capsys.readouterr().out


def test_same_name_refuses_to_overwrite(trained_run, idx_dir, capsys):
    code = main(
        [
            "train",
            "--dataset",
            "idx",
            "--data-dir",
            str(idx_dir),
            "--normal-class",
            "2",
            "--output-dir",
            str(trained_run.parents[3]),
            "--name",
            "e2e",
            *FAST,
        ]
    )
    assert code == 2
    assert "already holds a run" in capsys.readouterr().err


def test_config_file_and_set(idx_dir, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data:\n  dataset: idx\n  data_dir: {idx_dir}\n  normal_class: 5\n"
        "train:\n  n_epochs: 1\n  progress_bar: false\n  accelerator: cpu\n"
    )
    code = main(
        [
            "train",
            "--config",
            str(config),
            "--set",
            "model.latent_dim=4",
            "--no-plots",
            "--output-dir",
            str(tmp_path),
            "--name",
            "cfg",
        ]
    )
    assert code == 0
    text = (tmp_path / "autoencoder" / "idx" / "class5" / "cfg" / "config.yaml").read_text()
    assert "latent_dim: 4" in text and "n_epochs: 1" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--normal-class", "12"], "normal_class must be a class index in 0..9, got 12"),
        (["--anomaly-ratio", "1.0"], "data.anomaly_ratio must be less than 1, got 1.0"),
        (["--anomaly-ratio", "-0.5"], "data.anomaly_ratio must be at least 0, got -0.5"),
        (["--method", "vae"], "unknown method 'vae'"),
        (["--set", "train.n_epoch=3"], "unknown config key(s) train.n_epoch"),
        (["--set", "model.depth=3"], "unknown config key(s) model.depth"),
        (["--set", "novalue"], "--set expects KEY=VALUE"),
        (["--n-epochs", "0"], "n_epochs must be at least 1"),
    ],
)
def test_bad_arguments_name_the_problem(idx_dir, tmp_path, capsys, args, message):
    code = main(
        [
            "train",
            "--dataset",
            "idx",
            "--data-dir",
            str(idx_dir),
            "--output-dir",
            str(tmp_path),
            *FAST,
            *args,
        ]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.rglob("model.pt"))


def test_missing_data_lists_options(tmp_path, capsys, monkeypatch):
    from anomalia.data import fetch

    monkeypatch.delenv(fetch.ENV_VAR, raising=False)
    monkeypatch.setattr(fetch, "user_cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(fetch, "SYSTEM_DATA_DIR", tmp_path / "system")
    code = main(
        [
            "train",
            "--data-dir",
            str(tmp_path / "empty"),
            "--no-download",
            "--output-dir",
            str(tmp_path),
            *FAST,
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "no copy of fashion_mnist found" in err and "ANOMALIA_DATA" in err


def test_evaluate_on_non_run_directory(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "not a finished run directory" in capsys.readouterr().err


def test_help_explains_flags(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for flag in (
        "--normal-class",
        "--anomaly-ratio",
        "--n-known-anomaly-classes",
        "--strategy",
        "--devices",
        "--accelerator",
        "--set",
        "--config",
    ):
        assert flag in out


def test_list(capsys):
    assert main(["list"]) == 0
    assert "autoencoder" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("gan", []),
        ("dual_gan", []),
        ("deep_sad", ["--set", "model.n_pretrain_epochs=1"]),
        ("classifier", []),
        ("knn", []),
    ],
)
def test_other_methods_end_to_end(method, extra, idx_dir, tmp_path, capsys):
    args = [
        "train",
        "--method",
        method,
        "--dataset",
        "idx",
        "--data-dir",
        str(idx_dir),
        "--output-dir",
        str(tmp_path),
        "--name",
        "e2e",
        "--n-epochs",
        "2",
        *FAST[2:],
        *extra,
    ]
    assert main(args) == 0
    run_dir = tmp_path / method / "idx" / "class0" / "e2e"
    assert (run_dir / "plots" / "roc.png").is_file()
    reconstructs = method not in ("classifier", "knn")
    assert (run_dir / "plots" / "reconstructions.png").is_file() == reconstructs
    assert main(["evaluate", str(run_dir), "--accelerator", "cpu"]) == 0
