"""Training and scoring throughput on real Fashion-MNIST (class 0 normal, gamma_l = 0.05).

Two measurements, printed as Markdown for docs/benchmarks.md:
1. ``--loop``: the autoencoder trained by anomalia's Lightning loop against a bare PyTorch loop
   of the same network, loss, optimizer, sampler and batches (images per second, best of
   ``--repeats`` alternating runs so neither side benefits from a warmer machine).
2. ``--methods``: training and scoring images per second of every registered method, and the
   peak resident memory each adds while training and while scoring (VmHWM above the memory
   held before, Linux only).

    python benchmarks/speed.py --loop --methods
    python benchmarks/speed.py --methods --method self_supervised --model score=fused
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anomalia.config import TrainConfig
from anomalia.data import BalancedBatchSampler, TensorImageDataset, load_dataset, make_split
from anomalia.data.images import collate_batch
from anomalia.methods import available_methods, get_method
from anomalia.training import build_trainer
from anomalia.utils import seed_everything


def loader(images: torch.Tensor, targets: np.ndarray, batch_size: int = 32):
    return torch.utils.data.DataLoader(
        TensorImageDataset(images, targets),
        batch_sampler=BalancedBatchSampler(targets, batch_size),
        collate_fn=collate_batch,
    )


def n_images(targets: np.ndarray, n_epochs: int) -> int:
    return sum(len(b) for b in BalancedBatchSampler(targets, 32)) * n_epochs


def module_for(method: str, model: dict[str, Any] | None = None):
    from dataclasses import asdict

    from anomalia.config import from_dict

    seed_everything(0)
    optim = {"lr": 1e-3, "betas": [0.9, 0.999], "weight_decay": 0.0}
    # Deep SAD without pretraining: one epoch measures its own phase (c, then the SAD loss).
    params = {"n_pretrain_epochs": 0} if method == "deep_sad" else {}
    record = get_method(method)
    config = from_dict(record.config_class, {**params, **(model or {})}, prefix="model.")
    return record.module(1, 28, asdict(config), optim)


def lightning_rate(
    method: str, images, targets, n_epochs: int, model: dict[str, Any] | None = None
) -> tuple[float, Any]:
    """Training images per second through anomalia's Lightning module, and the module."""
    module = module_for(method, model)
    trainer = build_trainer(TrainConfig(n_epochs=n_epochs, progress_bar=False, accelerator="cpu"))
    start = time.perf_counter()
    trainer.fit(module, loader(images, targets))
    return n_images(targets, n_epochs) / (time.perf_counter() - start), module


def bare_rate(images, targets, n_epochs: int) -> float:
    module = module_for("autoencoder")
    model, loss_fn = module.model, module.loss
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = loader(images, targets)
    start = time.perf_counter()
    for epoch in range(n_epochs):
        data.batch_sampler.set_epoch(epoch)
        for x, y in data:
            loss = loss_fn(x, model(x), y)["loss"]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return n_images(targets, n_epochs) / (time.perf_counter() - start)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def peak_rise_mib(fn: Any) -> tuple[Any, float]:
    """Run ``fn``; return its result and the rise of peak resident memory it caused (MiB)."""
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    baseline = _status_kib("VmRSS")
    result = fn()
    return result, (_status_kib("VmHWM") - baseline) / 1024


@torch.inference_mode()
def scoring_rate(model: torch.nn.Module, images: torch.Tensor) -> float:
    model.eval()
    start = time.perf_counter()
    for i in range(0, len(images), 512):
        model.score(images[i : i + 512])
    return len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loop", action="store_true")
    parser.add_argument("--methods", action="store_true")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--method", action="append", help="only this method (repeatable)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model parameter for every method timed, e.g. score=fused (repeatable)",
    )
    parser.add_argument("--one", metavar="METHOD", help=argparse.SUPPRESS)
    args = parser.parse_args()

    data = load_dataset("fashion_mnist")
    split = make_split(data.train_labels, data.test_labels, normal_class=0)
    images = torch.from_numpy(data.train_images[split.train_indices])
    targets = split.train_targets
    if not args.one:
        print(
            f"machine: {platform.processor() or platform.machine()}, "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}"
        )
    if args.loop:
        rates: dict[str, list[float]] = {"lightning": [], "bare": []}
        for _ in range(args.repeats):
            rates["lightning"].append(
                lightning_rate("autoencoder", images, targets, args.epochs)[0]
            )
            rates["bare"].append(bare_rate(images, targets, args.epochs))
        best = {k: max(v) for k, v in rates.items()}
        print(f"\n| loop | images/s (best of {args.repeats}) | all runs |")
        print("| --- | --- | --- |")
        for k, v in rates.items():
            print(f"| {k} | {best[k]:.0f} | {', '.join(f'{r:.0f}' for r in v)} |")
        print(f"\nLightning / bare = {best['lightning'] / best['bare']:.3f}")
    if args.methods:
        print("\n| method | train images/s | score images/s | train peak MiB | score peak MiB |")
        print("| --- | --- | --- | --- | --- |")
        methods = args.method or available_methods()
        for method in methods:  # each in a fresh process: clean peak memory
            overrides = [f"--model={kv}" for kv in args.model]
            subprocess.run(
                [sys.executable, __file__, "--one", method, *overrides],
                check=True,
                stderr=subprocess.DEVNULL,
            )
    if args.one:
        test = torch.from_numpy(data.test_images).float() / 255
        method = args.one
        model = dict(kv.split("=", 1) for kv in args.model)
        (train, module), train_mib = peak_rise_mib(
            lambda: lightning_rate(method, images, targets, 1, model)
        )
        score, score_mib = peak_rise_mib(lambda: scoring_rate(module.model, test))
        name = " ".join([method, *args.model])
        print(f"| {name} | {train:.0f} | {score:.0f} | {train_mib:.0f} | {score_mib:.0f} |")


if __name__ == "__main__":
    main()
