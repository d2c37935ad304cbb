"""Console and file logs of training: one line per epoch off a terminal, optional loggers, and
warning filters that last only while fitting."""

import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

import anomalia
from anomalia.config import TrainConfig
from anomalia.errors import ConfigError
from anomalia.training.trainer import (
    EpochLines,
    build_loggers,
    build_trainer,
    epoch_line,
    fit,
    quiet_lightning,
)

LINE = re.compile(r"^epoch (\d+)/(\d+)  .*  \d+\.\d s$")


def tiny_module():
    """A LightningModule that logs one train and one val metric per epoch, as ours do."""
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
            self.losses = []

        def training_step(self, batch, batch_idx):
            (x,) = batch
            loss = self.layer(x).pow(2).mean()
            self.losses.append(loss.detach())
            return loss

        def on_train_epoch_end(self):  # logged after non-monitoring callbacks' hook
            self.log("train/loss", torch.stack(self.losses).mean())
            self.losses.clear()

        def validation_step(self, batch, batch_idx):
            (x,) = batch
            self.log("val/normal_score", self.layer(x).mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return Tiny()


def loader():
    data = torch.utils.data.TensorDataset(torch.randn(16, 4))
    return torch.utils.data.DataLoader(data, batch_size=8)


def train_config(**kwargs):
    return TrainConfig(n_epochs=3, accelerator="cpu", devices=1, **kwargs)


def test_one_line_per_epoch_when_output_is_not_a_terminal(capsys):
    trainer = build_trainer(train_config(progress_bar=True))
    assert not trainer.progress_bar_callback  # capsys is not a terminal: no bar frames
    assert any(isinstance(c, EpochLines) for c in trainer.callbacks)
    fit(trainer, tiny_module(), loader(), loader())
    lines = capsys.readouterr().out.splitlines()
    assert [LINE.match(line).groups() for line in lines] == [("1", "3"), ("2", "3"), ("3", "3")]
    # every line holds its own epoch's train metric (logged in the module's epoch-end hook)
    assert all("train/loss " in line and "val/normal_score " in line for line in lines)


def test_no_lines_without_progress_bar(capsys):
    trainer = build_trainer(train_config(progress_bar=False))
    assert not any(isinstance(c, EpochLines) for c in trainer.callbacks)
    fit(trainer, tiny_module(), loader())
    assert capsys.readouterr().out == ""


def test_progress_bar_on_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    trainer = build_trainer(train_config(progress_bar=True))
    assert trainer.progress_bar_callback is not None
    assert not any(isinstance(c, EpochLines) for c in trainer.callbacks)


def test_epoch_line_format():
    line = epoch_line(
        2, 15, {"train/loss": torch.tensor(0.012345), "val/auroc": 0.9, "other": 1.0}, 4.25
    )
    assert line == "epoch 3/15  train/loss 0.01235  val/auroc 0.9  4.2 s"


def test_detector_prints_one_line_per_epoch(tmp_path, capsys):
    images = np.random.default_rng(0).random((32, 1, 8, 8), dtype=np.float32)
    detector = anomalia.Detector(
        "autoencoder", n_epochs=2, progress_bar=True, accelerator="cpu", work_dir=tmp_path
    )
    detector.fit(images)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert [LINE.match(line).groups() for line in lines] == [("1", "2"), ("2", "2")]
    assert all("train/" in line for line in lines)
    assert (tmp_path / "logs" / "metrics.csv").is_file()


def test_tensorboard_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    trainer = build_trainer(
        train_config(progress_bar=False, logger=["csv", "tensorboard"]), tmp_path
    )
    fit(trainer, tiny_module(), loader(), loader())
    assert (tmp_path / "logs" / "metrics.csv").is_file()  # CSV is always written
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("logger", "modules", "extra"),
    [
        ("tensorboard", ["tensorboard", "tensorboardX"], "tensorboard"),
        ("mlflow", ["mlflow"], "mlflow"),
    ],
)
def test_missing_logger_package_is_a_config_error(tmp_path, monkeypatch, logger, modules, extra):
    for module in modules:
        monkeypatch.setitem(sys.modules, module, None)  # makes importing it fail
    with pytest.raises(ConfigError, match=rf"{logger}.*pip install 'anomalia\[{extra}\]'"):
        build_trainer(train_config(logger=["csv", logger]), tmp_path)


def test_mlflow_logs_under_the_run_directory_unless_told_otherwise(tmp_path, monkeypatch):
    import lightning.pytorch.loggers

    from anomalia.training import trainer

    calls = []
    monkeypatch.setattr(trainer, "_require", lambda logger: None)  # mlflow is not installed
    monkeypatch.setattr(
        lightning.pytorch.loggers, "MLFlowLogger", lambda **kwargs: calls.append(kwargs)
    )
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    build_loggers(["csv", "mlflow"], tmp_path / "run")
    assert calls[-1]["tracking_uri"] == (tmp_path / "run" / "mlruns").resolve().as_uri()
    assert calls[-1]["run_name"] == "run"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.example:5000")
    build_loggers(["mlflow"], tmp_path / "run")
    assert calls[-1]["tracking_uri"] == "http://tracking.example:5000"


def test_file_loggers_need_a_work_dir():
    with pytest.raises(ConfigError, match="work_dir"):
        build_trainer(train_config(logger=["tensorboard"]))


def test_quiet_lightning_silences_only_inside():
    message = "`LightningModule.configure_optimizers` returned `None`, this fit will run with no"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet_lightning():
            warnings.warn(message, UserWarning, stacklevel=1)
            warnings.warn("something the user should see", UserWarning, stacklevel=1)
        warnings.warn(message, UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["something the user should see", message]


def test_importing_anomalia_leaves_warning_filters_alone():
    code = (
        "import warnings, anomalia, anomalia.training, anomalia.training.knn, "
        "anomalia.training.trainer as t\n"
        "patterns = {f[1].pattern for f in warnings.filters if f[1] is not None}\n"
        "print(sorted(patterns & set(t.QUIET_MESSAGES)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"
