"""Faults: a training killed mid-epoch, a diverging loss, a re-used run name."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from anomalia import Detector
from anomalia.cli import main

from .conftest import write_synthetic_idx

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bigger_idx(tmp_path_factory):
    # 400 normals and batch size 4: ~180 steps per epoch, so a kill lands mid-epoch.
    return write_synthetic_idx(
        tmp_path_factory.mktemp("idx400"), n_train_per_class=400, n_test_per_class=10
    )


def train_args(data_dir, out, name, n_epochs=6):
    return [
        "train",
        "--dataset",
        "idx",
        "--data-dir",
        str(data_dir),
        "--output-dir",
        str(out),
        "--name",
        name,
        "--n-epochs",
        str(n_epochs),
        "--batch-size",
        "4",
        "--no-plots",
        "--no-progress-bar",
        "--accelerator",
        "cpu",
    ]


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(bigger_idx, tmp_path):
    run_dir = tmp_path / "autoencoder" / "idx" / "class0"
    assert main(train_args(bigger_idx, tmp_path, "full")) == 0

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "anomalia.cli", *train_args(bigger_idx, tmp_path, "killed")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = run_dir / "killed" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "training finished before it could be killed"
    assert checkpoint.exists()
    assert not (run_dir / "killed" / "metrics.json").exists()
    assert json.loads((run_dir / "killed" / "run.json").read_text())["status"] == "running"

    assert main(["train", "--resume", str(run_dir / "killed")]) == 0
    full = (run_dir / "full" / "scores.csv").read_text()
    resumed = (run_dir / "killed" / "scores.csv").read_text()
    assert resumed == full
    info = json.loads((run_dir / "killed" / "run.json").read_text())
    assert info["status"] == "finished" and "resumed" in info
    # The training log holds every epoch once, from before and after the kill.
    log = (run_dir / "killed" / "logs" / "metrics.csv").read_text().splitlines()
    epochs = [int(line.split(",")[0]) for line in log[1:]]
    assert sorted(set(epochs)) == list(range(6))
    assert not (run_dir / "killed" / "logs" / "metrics.before-resume.csv").exists()


def test_resume_refuses_finished_run_and_extra_flags(bigger_idx, tmp_path, capsys):
    assert main(train_args(bigger_idx, tmp_path, "done", n_epochs=1)) == 0
    run_dir = tmp_path / "autoencoder" / "idx" / "class0" / "done"
    assert main(["train", "--resume", str(run_dir)]) == 2
    assert "already finished" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--n-epochs", "3"]) == 2
    assert "drop --n-epochs" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_divergence_names_term_marks_run_failed_keeps_checkpoint(
    bigger_idx, tmp_path, capsys, monkeypatch
):
    from anomalia.models.autoencoder import AutoencoderLoss
    from anomalia.training import AutoencoderModule

    original = AutoencoderLoss.forward
    module_epoch = {}

    def poisoned(self, x, recon, targets):
        terms = original(self, x, recon, targets)
        if module_epoch.get("epoch", 0) >= 2:  # inject a NaN in the third epoch
            terms["abc"] = terms["abc"] * float("nan")
        return terms

    def track_epoch(self):
        module_epoch["epoch"] = self.current_epoch

    monkeypatch.setattr(AutoencoderLoss, "forward", poisoned)
    monkeypatch.setattr(AutoencoderModule, "on_train_epoch_start", track_epoch, raising=False)
    code = main(train_args(bigger_idx, tmp_path, "diverged", n_epochs=4))
    assert code == 2
    err = capsys.readouterr().err
    assert "loss term 'abc' became nan at epoch 2" in err and "--lr" in err
    run_dir = tmp_path / "autoencoder" / "idx" / "class0" / "diverged"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "loss term 'abc'" in info["error"]
    assert not (run_dir / "metrics.json").exists()
    # The last good epoch (1) is kept and training can go on from it once the cause is gone.
    import torch

    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["epoch"] == 1
    monkeypatch.setattr(AutoencoderLoss, "forward", original)
    assert main(["train", "--resume", str(run_dir)]) == 0


def test_huge_learning_rate_diverges_with_a_clear_error(bigger_idx, tmp_path, capsys):
    code = main([*train_args(bigger_idx, tmp_path, "lr", n_epochs=20), "--lr", "1e12"])
    assert code == 2
    assert "became" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["autoencoder", "knn"])
def test_two_process_ddp_trains_and_rank_zero_evaluates(method, idx_dir, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ANOMALIA_RUN_DIR", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "anomalia.cli",
            *train_args(idx_dir, tmp_path, "ddp", n_epochs=2),
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "--batch-size",
            "16",
            "--method",
            method,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    class_dir = tmp_path / method / "idx" / "class0"
    assert [p.name for p in class_dir.iterdir()] == ["ddp"]  # no stray directories
    assert result.stdout.count("run directory:") == 1  # one process reports
    assert json.loads((class_dir / "ddp" / "run.json").read_text())["world_size"] == 2
    # A single-process evaluation of the saved weights reproduces the DDP run's metrics.
    assert main(["evaluate", str(class_dir / "ddp"), "--accelerator", "cpu"]) == 0
    if method == "knn":  # each process saw half the data; the banks hold all of it
        detector = Detector.load(class_dir / "ddp" / "model.pt")
        n_train = len(np.load(class_dir / "ddp" / "split.npz")["train_indices"])
        assert len(detector.model_.normal_bank) + len(detector.model_.anomaly_bank) == n_train


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_nodes_share_one_run_directory(idx_dir, tmp_path):
    """Two "nodes" (NODE_RANK 0 and 1) on 127.0.0.1 with one shared output directory, as on a
    cluster with a shared filesystem: rank 0 owns the run directory, node 1 neither creates
    nor refuses it, and both finish."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    env["MASTER_PORT"] = str(_free_port())
    env.pop("ANOMALIA_RUN_DIR", None)
    argv = [sys.executable, "-m", "anomalia.cli", *train_args(idx_dir, tmp_path, "shared-run", 2)]
    argv += ["--devices", "1", "--num-nodes", "2", "--strategy", "ddp", "--method", "knn"]
    nodes = [
        subprocess.Popen(
            argv,
            env={**env, "NODE_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    try:
        outputs = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:  # never leave a node behind, whatever happened
            if node.poll() is None:
                node.kill()
                node.wait()
    for node, (_, err) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, err[-3000:]
    class_dir = tmp_path / "knn" / "idx" / "class0"
    assert [p.name for p in class_dir.iterdir()] == ["shared-run"]
    assert not (tmp_path / ".ddp-worker").exists()
    info = json.loads((class_dir / "shared-run" / "run.json").read_text())
    assert info["status"] == "finished" and info["world_size"] == 2
    assert sum(out.count("run directory:") for out, _ in outputs) == 1  # rank 0 reports
    assert main(["evaluate", str(class_dir / "shared-run"), "--accelerator", "cpu"]) == 0
