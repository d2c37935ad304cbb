"""Peak memory of scoring many images: it must stay flat as the number of images grows.

Scores N images (N = 10k, 60k, and 180k: the training set three times) with a saved detector and
reports the rise of the process's peak resident memory (VmHWM, reset before each measurement)
over the memory held before scoring. Example::

    python benchmarks/memory.py runs/autoencoder/fashion_mnist/class0/gl05-seed0/model.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from anomalia import Detector
from anomalia.data import load_dataset


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def main() -> None:
    detector = Detector.load(sys.argv[1], accelerator="cpu")
    train = load_dataset("fashion_mnist").train_images  # uint8, 47 MB
    images = np.concatenate([train, train, train])  # 180,000 images, 141 MB, made before baseline
    detector.decision_function(images[:512])  # warm-up: allocator and kernels
    print(f"eval_batch_size {detector.train_config_.eval_batch_size}")
    print("| images scored | peak memory above baseline (MiB) | float32 copy of all images (MiB) |")
    print("| --- | --- | --- |")
    for n in (10_000, 60_000, 180_000):
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to current
        baseline = _status_kib("VmRSS")
        detector.decision_function(images[:n])
        rise = (_status_kib("VmHWM") - baseline) / 1024
        print(f"| {n} | {rise:.1f} | {n * images[0].size * 4 / 2**20:.0f} |")


if __name__ == "__main__":
    main()
