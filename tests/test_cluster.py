"""``anomalia benchmark --executor ray``: grid resources, errors, and real Ray clusters.

The cluster tests start Ray themselves on 127.0.0.1 only: a private instance (no ``--address``),
and a head node plus a second worker node (``ray.cluster_utils.Cluster``, the fixture Ray's own
tests use for several nodes on one machine), which is shut down at the end of the module.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anomalia.benchmark import (
    BenchmarkConfig,
    cell_log,
    cells,
    load_benchmark_config,
    read_results,
)
from anomalia.cli import main
from anomalia.errors import ConfigError
from anomalia.rundir import RunDir

from .test_benchmark import smoke_yaml

N_CELLS = 4


def ray_grid(path: Path, idx_dir: Path, out: Path, name: str, n_epochs: int = 1) -> Path:
    """The benchmark tests' smoke grid cut to 4 cells (two classes, gamma_l 0 and .05): each
    Ray test runs its cells once more, and a third of the cells tells as much."""
    text = smoke_yaml(path, idx_dir, out, name, n_epochs).read_text()
    path.write_text(
        text.replace("normal_classes: [0, 1, 2]", "normal_classes: [0, 1]").replace(
            "seeds: [0, 1]", "seeds: [0]"
        )
    )
    return path


needs_ray = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="needs the ray extra"
)


def test_resources_per_cell_and_per_method():
    config = BenchmarkConfig(
        methods=["autoencoder", "dual_gan"],
        method_resources={"dual_gan": {"cpus": 2}},
    )
    assert config.cell_resources("autoencoder") == {"cpus": 1.0, "gpus": 0.0}
    assert config.cell_resources("dual_gan") == {"cpus": 2.0, "gpus": 0.0}
    gpu = BenchmarkConfig(resources={"cpus": 4, "gpus": 0.5})
    assert gpu.cell_resources("autoencoder") == {"cpus": 4.0, "gpus": 0.5}


@pytest.mark.parametrize(
    "text, message",
    [
        ("resources: {cpus: 0}\n", "resources must ask for cpus > 0"),
        ("resources: {memory: 4}\n", r"resources has unknown key\(s\) \['memory'\]"),
        ("method_resources: {gan: {cpus: 2}}\n", "method_resources.gan names no method"),
        ("method_resources: {autoencoder: {gpus: -1}}\n", "method_resources.autoencoder must"),
    ],
)
def test_bad_resources_fail_when_the_grid_loads(tmp_path, text, message):
    path = tmp_path / "grid.yaml"
    path.write_text("methods: [autoencoder]\n" + text)
    with pytest.raises(ConfigError, match=message):
        load_benchmark_config(path)


def test_ray_flags_need_the_ray_executor(idx_dir, tmp_path, capsys):
    grid = smoke_yaml(tmp_path / "g.yaml", idx_dir, tmp_path / "out", "flags")
    assert main(["benchmark", str(grid), "--address", "auto"]) == 2
    assert "--address only apply with --executor ray" in capsys.readouterr().err
    assert main(["benchmark", str(grid), "--executor", "ray", "--jobs", "2"]) == 2
    assert "--jobs and --threads apply to --executor local" in capsys.readouterr().err


def test_without_ray_the_executor_says_how_to_install_it(idx_dir, tmp_path, monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "ray" else real_find_spec(name, *a),
    )
    grid = smoke_yaml(tmp_path / "g.yaml", idx_dir, tmp_path / "out", "noray")
    assert main(["benchmark", str(grid), "--executor", "ray"]) == 2
    assert "needs Ray, which is not installed; install it with: pip install 'anomalia[ray]'" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out" / "noray").exists()  # nothing started


def _results_text(out: Path, name: str) -> str:
    return (out / name / "results.csv").read_text()


@pytest.fixture(scope="module")
def local_reference(idx_dir, tmp_path_factory):
    """The smoke grid with the local executor, two cells at once (one torch thread each, as a
    Ray cell with one CPU has)."""
    out = tmp_path_factory.mktemp("local")
    grid = ray_grid(out / "g.yaml", idx_dir, out, "smoke")
    assert main(["benchmark", str(grid), "--jobs", "2"]) == 0
    return _results_text(out, "smoke")


@needs_ray
def test_private_ray_instance_gives_the_local_executors_rows(
    idx_dir, tmp_path, local_reference, capsys
):
    grid = ray_grid(tmp_path / "g.yaml", idx_dir, tmp_path, "smoke")
    assert main(["benchmark", str(grid), "--executor", "ray"]) == 0
    out = capsys.readouterr().out
    assert "to run with Ray" in out and "min to go]" in out
    assert _results_text(tmp_path, "smoke") == local_reference
    # shared storage (one machine): cells trained in place, each with its own log
    logs = sorted((tmp_path / "smoke" / "cells").glob("*.log"))
    assert len(logs) == N_CELLS and "epoch 1/1" in logs[0].read_text()
    assert not list((tmp_path / "smoke").glob(".ray-storage-check"))
    # a second invocation has nothing left to run, and starts no cell
    assert main(["benchmark", str(grid), "--executor", "ray"]) == 0
    assert f"{N_CELLS} already finished, 0 to run" in capsys.readouterr().out


@needs_ray
def test_a_failing_cell_is_reported_with_its_log_and_the_others_go_on(idx_dir, tmp_path, capsys):
    grid = tmp_path / "g.yaml"
    grid.write_text(
        "name: failing\nmethods: [autoencoder, knn]\nnormal_classes: [0]\nseeds: [0]\n"
        "anomaly_ratios: [0.05]\nn_known_anomaly_classes: [1]\n"
        f"base:\n  plots: false\n  data: {{dataset: idx, data_dir: {idx_dir}}}\n"
        "  train: {n_epochs: 1, batch_size: 16, accelerator: cpu}\n"
        f"method_overrides:\n  knn: {{data: {{data_dir: {tmp_path / 'missing'}}}}}\n"
        f"output_dir: {tmp_path}\n"
    )
    assert main(["benchmark", str(grid), "--executor", "ray"]) == 1
    out = capsys.readouterr().out
    log = tmp_path / "failing" / "cells" / "knn_class0_g0.05-k1-seed0.log"
    assert "FAILED knn/class0/g0.05-k1-seed0: DataError" in out and f"log: {log}" in out
    assert "Traceback" in log.read_text()
    rows = read_results(tmp_path / "failing" / "results.csv")
    assert [r["method"] for r in rows] == ["autoencoder"]


# ------------------------------------------------------------------ a two-node cluster
@pytest.fixture(scope="module")
def two_nodes():
    """A head node and a worker node, one CPU each, on 127.0.0.1."""
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    node_args = {"node_ip_address": "127.0.0.1", "num_cpus": 1, "object_store_memory": 10**8}
    cluster = Cluster(
        initialize_head=True, head_node_args={**node_args, "include_dashboard": False}
    )
    worker = cluster.add_node(**node_args)
    cluster.wait_for_nodes()
    yield cluster, worker
    cluster.shutdown()


@pytest.fixture
def start_driver():
    """Starts ``anomalia benchmark`` in its own process, connected to the test cluster; a
    driver still running when the test ends (a failed assertion) is killed by its PID.

    Ray on Linux turns a loopback address into the machine's network address before it
    connects; its single-machine mode keeps loopback, where the test cluster listens.
    """
    started: list[subprocess.Popen] = []

    def start(grid: Path, address: str, *extra: str) -> subprocess.Popen:
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "anomalia.cli", "benchmark", str(grid),
             "--executor", "ray", "--address", address, *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


@needs_ray
def test_two_nodes_without_shared_storage_send_run_directories_back(
    two_nodes, idx_dir, tmp_path, local_reference, start_driver
):
    cluster, _ = two_nodes
    grid = ray_grid(tmp_path / "g.yaml", idx_dir, tmp_path, "smoke")
    proc = start_driver(grid, cluster.address, "--storage", "send-back")
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    assert _results_text(tmp_path, "smoke") == local_reference
    for row in read_results(tmp_path / "smoke" / "results.csv"):
        run = RunDir(tmp_path / "smoke" / row["run_dir"])
        assert run.is_finished and run.has(RunDir.MODEL)
        assert not (run.path / RunDir.CHECKPOINTS).exists()  # only unfinished runs need them
        assert run.read_config().output_dir == str(tmp_path / "smoke" / "runs")
    assert len(list((tmp_path / "smoke" / "cells").glob("*.log"))) == N_CELLS


def _cells_training_on(raylet_pid: int, logs: dict[str, Path]) -> list[str]:
    """Keys of the cells that a worker of the node whose raylet is ``raylet_pid`` is training,
    past their log's first line (``logs``: each cell's log by key; a Ray worker's process title
    is ``ray::<task name>``, each cell's task is named by its key, and the title is set before
    the cell starts its log)."""
    keys = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            title = (stat.parent / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, UnicodeDecodeError):
            continue
        if int(fields[1]) != raylet_pid or not title.startswith("ray::autoencoder/"):
            continue
        key = title.removeprefix("ray::")
        text = logs[key].read_text() if logs[key].exists() else ""
        if "started on" in text and "finished in" not in text:
            keys.append(key)
    return keys


@needs_ray
def test_killing_a_node_mid_grid_still_ends_with_every_row(
    two_nodes, idx_dir, tmp_path, start_driver
):
    cluster, worker = two_nodes
    # 30 epochs: a cell of a few seconds, so that the kill lands while it trains
    grid = ray_grid(tmp_path / "g.yaml", idx_dir, tmp_path, "killed", n_epochs=30)
    proc = start_driver(grid, cluster.address)
    raylet = worker.all_processes["raylet"][0].process.pid
    config = load_benchmark_config(grid)
    logs = {cell.key: cell_log(config, cell) for cell in cells(config)}
    deadline = time.monotonic() + 120
    while not (busy := _cells_training_on(raylet, logs)) and proc.poll() is None:
        assert time.monotonic() < deadline, "no cell ever ran on the second node"
        time.sleep(0.05)
    assert busy, f"the grid ended before a cell ran on the second node: {proc.poll()}"
    # at once, while that cell is training: its raylet and workers are killed
    cluster.remove_node(worker, allow_graceful=False)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, output
    rows = read_results(tmp_path / "killed" / "results.csv")
    assert len(rows) == N_CELLS and all(float(r["auroc"]) > 0 for r in rows)
    assert "FAILED" not in output
    # the cell that was training on the killed node was started again, on the head node
    assert len(logs) == N_CELLS and all(log.exists() for log in logs.values())
    texts = {key: log.read_text() for key, log in logs.items()}
    assert texts[busy[0]].count("started on") == 2, texts
