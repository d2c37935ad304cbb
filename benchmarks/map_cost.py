"""What anomaly maps cost: scoring time with and without maps, on one run's test images.

Scores the run's test split ``--repeats`` times each way (alternating, after one warm-up
pass) and prints the median seconds:

    python benchmarks/map_cost.py runs/benchmarks/defects/runs/*/mvtec/class0/g0-kall-seed0

Memory of ``anomalia predict --maps`` over many files is measured with /usr/bin/time, see
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from anomalia.data import load_dataset
from anomalia.rundir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| run | images | scores only (s) | scores + maps (s) | ratio |")
    print("| --- | --- | --- | --- | --- |")
    for path in args.run_dirs:
        run = RunDir(path)
        config = run.read_config()
        data = load_dataset(config.data.dataset, config.data.data_dir)
        images = data.test_images[run.read_split().test_indices]
        detector = run.load_detector("cpu")
        detector.score_with_maps(images[:64])  # warm-up
        plain, with_maps = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            detector.decision_function(images)
            plain.append(time.perf_counter() - start)
            start = time.perf_counter()
            detector.score_with_maps(images)
            with_maps.append(time.perf_counter() - start)
        a, b = statistics.median(plain), statistics.median(with_maps)
        name = f"{config.method} {path.name}"
        print(f"| {name} | {len(images)} | {a:.3f} | {b:.3f} | {b / a:.2f} |", flush=True)


if __name__ == "__main__":
    main()
