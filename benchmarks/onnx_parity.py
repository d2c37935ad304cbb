"""ONNX export parity on real Fashion-MNIST test images: onnxruntime's scores vs PyTorch's.

    python benchmarks/onnx_parity.py RUN_DIR [RUN_DIR ...]

Exports each run with `anomalia export`, scores all 10,000 test images with onnxruntime and
with the PyTorch detector, and prints the largest absolute and relative score differences and
whether the AUROC changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from anomalia import Detector
from anomalia.data import load_dataset
from anomalia.evaluation import auroc
from anomalia.experiment import export_run


def main() -> None:
    data = load_dataset("fashion_mnist")
    images = data.test_images.astype(np.float32) / 255
    print("| run | method | max abs diff | max rel diff | AUROC torch | AUROC onnx |")
    print("| --- | --- | --- | --- | --- | --- |")
    for run_dir in map(Path, sys.argv[1:]):
        detector = Detector.load(run_dir / "model.pt", accelerator="cpu")
        torch_scores = detector.decision_function(images)
        session = ort.InferenceSession(str(export_run(run_dir)))
        onnx_scores = np.concatenate([
            session.run(["scores"], {"images": images[i : i + 500]})[0]
            for i in range(0, len(images), 500)
        ]).astype(np.float64)  # fmt: skip
        diff = np.abs(onnx_scores - torch_scores)
        labels = (data.test_labels != int(run_dir.parent.name.removeprefix("class"))).astype(int)
        print(
            f"| {run_dir} | {detector.method} | {diff.max():.2e} | "
            f"{(diff / np.maximum(np.abs(torch_scores), 1e-12)).max():.2e} | "
            f"{auroc(labels, torch_scores):.6f} | {auroc(labels, onnx_scores):.6f} |"
        )


if __name__ == "__main__":
    main()
