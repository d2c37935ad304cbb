"""The benchmark grid: cells, resumability, torn rows, summaries with published numbers."""

import os
import signal
import subprocess
import sys
import time

import pytest

from anomalia.benchmark import (
    RESULT_FIELDS,
    BenchmarkConfig,
    cell_config,
    cells,
    estimate_seconds_left,
    load_benchmark_config,
    read_results,
)
from anomalia.cli import main
from anomalia.errors import ConfigError
from anomalia.reporting.summary import method_stats, summary_markdown


def smoke_yaml(path, idx_dir, out, name, n_epochs=1):
    path.write_text(
        f"name: {name}\nmethods: [autoencoder]\nnormal_classes: [0, 1, 2]\nseeds: [0, 1]\n"
        "anomaly_ratios: [0.0, 0.05]\nn_known_anomaly_classes: [1]\n"
        f"base:\n  plots: false\n  data:\n    dataset: idx\n    data_dir: {idx_dir}\n"
        f"  train:\n    n_epochs: {n_epochs}\n    batch_size: 16\n    accelerator: cpu\n"
        f"output_dir: {out}\n"
    )
    return path


def test_grid_and_cell_configs():
    config = BenchmarkConfig(
        methods=["autoencoder", "gan"],
        normal_classes=[0, 3],
        seeds=[1],
        anomaly_ratios=[0.0, 0.1],
        n_known_anomaly_classes=[None, 1],
        base={"train": {"n_epochs": 2}},
        method_overrides={"gan": {"train": {"lr": 1e-4}}},
    )
    grid = cells(config)
    assert len(grid) == 2 * 2 * 2 * 1 * 2 and len({c.key for c in grid}) == len(grid)
    gan = next(c for c in grid if c.method == "gan")
    run = cell_config(config, gan)
    assert run.train.lr == 1e-4 and run.train.n_epochs == 2 and run.train.seed == 1
    assert run.data.normal_class == gan.normal_class and run.name == gan.name


def test_per_method_seeds_and_cells_a_method_cannot_run():
    config = BenchmarkConfig(
        methods=["autoencoder", "classifier", "deep_sad"],
        normal_classes=[0],
        seeds=[0, 1, 2],
        method_seeds={"deep_sad": [0]},
        anomaly_ratios=[0.0, 0.05],
        n_known_anomaly_classes=[1],
    )
    grid = {(c.method, c.anomaly_ratio, c.seed) for c in cells(config)}
    assert {(r, s) for m, r, s in grid if m == "autoencoder"} == {
        (r, s) for r in (0.0, 0.05) for s in (0, 1, 2)
    }
    # the classifier needs labelled anomalies: no gamma_l = 0 cells, rather than failed ones
    assert {(r, s) for m, r, s in grid if m == "classifier"} == {(0.05, s) for s in (0, 1, 2)}
    assert {(r, s) for m, r, s in grid if m == "deep_sad"} == {(0.0, 0), (0.05, 0)}


def test_bad_benchmark_config(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("methods: [autoencoder]\nseeds: []\n")
    with pytest.raises(ConfigError, match="seeds must list at least one value"):
        load_benchmark_config(path)
    path.write_text("methods: [vae]\n")
    with pytest.raises(ConfigError, match="unknown method 'vae'"):
        load_benchmark_config(path)
    path.write_text("methods: [autoencoder]\nmethod_seeds: {gan: [0]}\n")
    with pytest.raises(ConfigError, match=r"method_seeds\.gan"):
        load_benchmark_config(path)
    path.write_text("method: [autoencoder]\n")
    with pytest.raises(ConfigError, match="unknown config key"):
        load_benchmark_config(path)


def test_torn_last_line_is_dropped(tmp_path):
    path = tmp_path / "results.csv"
    row = ",".join(["x"] * len(RESULT_FIELDS))
    path.write_text(",".join(RESULT_FIELDS) + "\n" + row + "\n" + row[:7])
    assert len(read_results(path)) == 1


@pytest.mark.slow
def test_interrupted_benchmark_resumes_to_identical_results(idx_dir, tmp_path, capsys):
    out = tmp_path / "out"
    # Uninterrupted reference.
    config = smoke_yaml(tmp_path / "a.yaml", idx_dir, out, "ref")
    assert main(["benchmark", str(config)]) == 0
    reference = (out / "ref" / "results.csv").read_text()
    assert len(reference.splitlines()) == 1 + 12

    # Same grid, killed once the first rows are written (mid-grid, maybe mid-cell).
    config = smoke_yaml(tmp_path / "b.yaml", idx_dir, out, "killed", n_epochs=1)
    proc = subprocess.Popen(
        [sys.executable, "-m", "anomalia.cli", "benchmark", str(config)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = out / "killed" / "results.csv"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if results.exists() and len(results.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "benchmark finished before it could be killed"
    n_before = len(read_results(results))
    assert 3 <= n_before < 12

    capsys.readouterr()
    assert main(["benchmark", str(config)]) == 0
    assert f"{n_before} already finished" in capsys.readouterr().out
    assert results.read_text() == reference  # run_dir paths are relative to each benchmark


def test_summary_tables_and_published_numbers():
    rows = []
    for seed, shift in ((0, 0.0), (1, 0.02)):
        for k in range(10):
            for method in ("autoencoder", "dual_gan"):
                rows.append(
                    {
                        "method": method,
                        "anomaly_ratio": "0.05",
                        "n_known_anomaly_classes": "1",
                        "seed": str(seed),
                        "normal_class": str(k),
                        "auroc": str(0.9 + shift),
                        "auprc": str(0.8 + shift),
                        "dataset": "fashion_mnist",
                    }
                )
    stats = {s["method"]: s for s in method_stats(rows)}
    assert stats["autoencoder"]["auroc_mean"] == pytest.approx(0.91)
    assert stats["autoencoder"]["auroc_std"] == pytest.approx(0.0141421, rel=1e-4)
    assert stats["autoencoder"]["n_seeds"] == 2 and stats["autoencoder"]["n_classes"] == 10
    text = summary_markdown(rows)
    assert "91.0 ± 1.4" in text
    assert "Deep SAD [S] | 90.5" in text and "ESAD [S] | 95.6" in text  # gamma_l = .05, k_l = 1
    one_class = [{**r, "anomaly_ratio": "0", "n_known_anomaly_classes": ""} for r in rows]
    text = summary_markdown(one_class)
    assert "GEOM [S] | 93.5" in text and "| 6 |" in text and "83.3" in text
    assert "not comparable" not in text
    assert "not comparable" in summary_markdown([r for r in rows if r["normal_class"] != "9"])


def test_changed_grid_does_not_reuse_old_runs(idx_dir, tmp_path, capsys):
    config = smoke_yaml(tmp_path / "a.yaml", idx_dir, tmp_path / "out", "g")
    assert main(["benchmark", str(config)]) == 0
    config.write_text(config.read_text().replace("n_epochs: 1", "n_epochs: 2"))
    results = tmp_path / "out" / "g" / "results.csv"
    results.unlink()  # as if results.csv were lost: the runs are still on disk
    capsys.readouterr()
    assert main(["benchmark", str(config)]) == 2  # no cell finished: nothing to summarise
    out = capsys.readouterr().out
    assert "was run with other settings (train.n_epochs)" in out
    assert "12 cell(s) failed" in out


def test_rows_of_other_machines_survive_a_rerun(idx_dir, tmp_path):
    config = smoke_yaml(tmp_path / "a.yaml", idx_dir, tmp_path / "out", "m")
    assert main(["benchmark", str(config)]) == 0
    results = tmp_path / "out" / "m" / "results.csv"
    foreign = results.read_text().splitlines()[1].replace("autoencoder/", "gan/", 1)
    results.write_text(results.read_text() + foreign + "\n")
    assert main(["benchmark", str(config)]) == 0
    assert foreign in results.read_text().splitlines()


def test_a_grid_another_process_runs_is_refused_until_that_process_ends(idx_dir, tmp_path, capsys):
    config = smoke_yaml(tmp_path / "a.yaml", idx_dir, tmp_path / "out", "busy")
    config.write_text(
        config.read_text().replace("normal_classes: [0, 1, 2]", "normal_classes: [0]")
    )
    directory = tmp_path / "out" / "busy"
    directory.mkdir(parents=True)
    holder = subprocess.Popen(  # a benchmark process holding the grid, as far as the lock tells
        [sys.executable, "-c", "import sys, time; from filelock import FileLock; "
         "lock = FileLock(sys.argv[1]); lock.acquire(); print('held', flush=True); time.sleep(120)",
         str(directory / ".lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(["benchmark", str(config)]) == 2
        assert "another `anomalia benchmark` is running the grid" in capsys.readouterr().err
        assert not (directory / "results.csv").exists()  # nothing read, written or trained
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # a crash: the lock goes with its process
        holder.wait()
    assert main(["benchmark", str(config)]) == 0
    assert len(read_results(directory / "results.csv")) == 4


def test_a_grid_shared_out_over_two_machines_merges_into_one_summary(idx_dir, tmp_path, capsys):
    # "machine A" runs seed 0, "machine B" seed 1, each into its own directory, same grid name
    a = smoke_yaml(tmp_path / "a.yaml", idx_dir, tmp_path / "a", "grid")
    b = smoke_yaml(tmp_path / "b.yaml", idx_dir, tmp_path / "b", "grid")
    full = smoke_yaml(tmp_path / "full.yaml", idx_dir, tmp_path / "a", "grid")
    for path, seeds in ((a, "0"), (b, "1"), (full, "0, 1")):
        text = path.read_text().replace("[0.0, 0.05]", "[0.0]")
        path.write_text(text.replace("seeds: [0, 1]", f"seeds: [{seeds}]"))
    for path in (a, b):
        assert main(["benchmark", str(path)]) == 0
    b_results = tmp_path / "b" / "grid" / "results.csv"
    assert main(["benchmark", str(full), "--merge", str(b_results), "--summary-only"]) == 0
    assert "merged 3 row(s); 0 cell(s)" in capsys.readouterr().out
    rows = read_results(tmp_path / "a" / "grid" / "results.csv")
    assert sorted(r["seed"] for r in rows) == ["0", "0", "0", "1", "1", "1"]
    assert "2 x 3" in (tmp_path / "a" / "grid" / "summary.md").read_text()  # seeds x classes
    # merging again adds nothing; a file that is not a results.csv is refused by name
    assert main(["benchmark", str(full), "--merge", str(b_results), "--summary-only"]) == 0
    assert "merged 0 row(s); 3 cell(s)" in capsys.readouterr().out
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert main(["benchmark", str(full), "--merge", str(tmp_path / "other.csv")]) != 0
    assert "other.csv is not a results.csv" in capsys.readouterr().err


def test_time_estimate_weighs_each_method_by_its_own_cell_time():
    from collections import Counter

    times = {"knn": [5.0, 7.0], "deep_sad": [480.0]}
    left = Counter({"knn": 10, "deep_sad": 2, "classifier": 3})
    overall = (5 + 7 + 480) / 3  # classifier has no timed cell yet
    expected = (10 * 6.0 + 2 * 480.0 + 3 * overall) / 2
    assert estimate_seconds_left(times, left, jobs=2) == pytest.approx(expected)
    assert estimate_seconds_left({}, left, jobs=2) == 0.0
