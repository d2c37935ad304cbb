"""Where is the anomaly, end to end: a synthetic-defect folder with masks, trained through the
CLI, ends with pixel metrics, a map figure, the benchmark's localisation table and a report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from anomalia.benchmark import load_benchmark_config, read_results, run_benchmark, write_summary
from anomalia.cli import main
from anomalia.data import write_defect_dataset


@pytest.fixture(scope="module")
def defects(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("defects") / "data"
    write_defect_dataset(
        root, n_train_good=48, n_train_defects=2, n_test_good=12, n_test_defects=4, size=32
    )
    return root


def train(data_dir: Path, out: Path, method: str, *extra: str) -> Path:
    argv = ["train", "--dataset", "mvtec", "--data-dir", str(data_dir), "--output-dir", str(out)]
    argv += ["--method", method, "--n-epochs", "2", "--batch-size", "16", "--accelerator", "cpu"]
    assert main([*argv, "--no-progress-bar", "--name", "run", *extra]) == 0
    return out / method / "mvtec" / "class0" / "run"


@pytest.mark.parametrize("method", ["autoencoder", "knn"])
def test_pixel_metrics_and_map_figure(defects, tmp_path, method):
    run = train(defects, tmp_path, method)
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["aupro"] <= 1 and 0 <= metrics["pixel_auroc"] <= 1
    assert (run / "plots" / "anomaly_maps.png").is_file()
    assert main(["report", str(run)]) == 0
    assert "anomaly maps" in (run / "report.html").read_text()


def test_knn_finds_the_defects_on_this_data(defects, tmp_path):
    """A floor far below what knn reaches on the seeded data (pixel AUROC ~0.9)."""
    metrics = json.loads((train(defects, tmp_path, "knn") / "metrics.json").read_text())
    assert metrics["pixel_auroc"] >= 0.7


def test_method_without_maps_has_no_pixel_metrics(defects, tmp_path):
    run = train(defects, tmp_path, "classifier")
    metrics = json.loads((run / "metrics.json").read_text())
    assert "pixel_auroc" not in metrics and not (run / "plots" / "anomaly_maps.png").exists()


def test_missing_mask_is_an_error_naming_it(defects, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(defects, broken)
    victim = sorted((broken / "ground_truth" / "hole").iterdir())[0]
    victim.unlink()
    argv = ["train", "--dataset", "mvtec", "--data-dir", str(broken), "--output-dir", str(tmp_path)]
    assert main([*argv, "--method", "knn", "--no-progress-bar"]) == 2
    assert victim.name in capsys.readouterr().err
    # ... unless the run says masks do not matter to it
    assert main([*argv, "--method", "knn", "--no-progress-bar", "--masks", "ignore"]) == 0


def test_masks_required_without_ground_truth_is_an_error(defects, tmp_path, capsys):
    plain = tmp_path / "plain"
    shutil.copytree(defects, plain, ignore=shutil.ignore_patterns("ground_truth"))
    argv = ["train", "--dataset", "mvtec", "--data-dir", str(plain), "--output-dir", str(tmp_path)]
    assert main([*argv, "--method", "knn", "--masks", "required"]) == 2
    assert "ground_truth" in capsys.readouterr().err


def test_benchmark_reports_localisation(defects, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        f"name: loc\nmethods: [knn, classifier]\nnormal_classes: [0]\nanomaly_ratios: [0.05]\n"
        f"output_dir: {tmp_path}\nbase: {{data: {{dataset: mvtec, data_dir: {defects}}}, "
        "plots: false}\n"
    )
    config = load_benchmark_config(grid)
    _, failed = run_benchmark(config)
    assert not failed
    rows = {r["method"]: r for r in read_results(config.directory / "results.csv")}
    assert float(rows["knn"]["aupro"]) > 0 and rows["classifier"]["aupro"] == ""
    summary = write_summary(config).read_text()
    assert "Localisation" in summary and "pixel AUROC" in summary
    localisation = summary[summary.index("Localisation") :]
    knn_line = next(line for line in localisation.splitlines() if "| knn |" in line)
    assert f"{100 * float(rows['knn']['aupro']):.1f}" in knn_line
    assert np.isfinite(float(rows["knn"]["pixel_auroc"]))
