"""Train one method on every normal class of Fashion-MNIST and print a Markdown AUROC table.

Each class is a separate ``anomalia train`` process (``--jobs`` at once, one thread each, which
uses a small CPU better than one process with many threads). Extra arguments go to
``anomalia train``. Example (the figures in docs/results.md)::

    python benchmarks/ten_classes.py --jobs 2 --tag gl05 -- --anomaly-ratio 0.05
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def run_class(normal_class: int, args: argparse.Namespace, extra: list[str]) -> dict:
    name = f"{args.tag}-seed{args.seed}"
    run_dir = Path(args.output_dir) / args.method / "fashion_mnist" / f"class{normal_class}" / name
    if not (run_dir / "metrics.json").exists():
        cmd = [
            sys.executable,
            "-m",
            "anomalia.cli",
            "train",
            "--method",
            args.method,
            "--normal-class",
            str(normal_class),
            "--seed",
            str(args.seed),
            "--name",
            name,
            "--output-dir",
            args.output_dir,
            "--no-progress-bar",
            *extra,
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        log = run_dir.parent / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as handle:
            subprocess.run(cmd, check=True, stdout=handle, stderr=subprocess.STDOUT, env=env)
    return json.loads((run_dir / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--method", default="autoencoder")
    parser.add_argument("--classes", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--tag", default="sweep")
    parser.add_argument("--output-dir", default="runs")
    args, extra = parser.parse_known_args()
    extra = [e for e in extra if e != "--"]
    classes = [int(c) for c in args.classes.split(",")]
    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda c: run_class(c, args, extra), classes))
    wall = time.perf_counter() - start
    aurocs = [r["auroc"] for r in results]
    print(f"method {args.method}, seed {args.seed}, args {' '.join(extra) or '(defaults)'}")
    print("| normal class | AUROC | AUPRC | loss normal | loss anomaly | train s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for c, r in zip(classes, results, strict=True):
        print(
            f"| {c} | {r['auroc']:.4f} | {r['auprc']:.4f} | {r['mean_score_normal']:.4f} | "
            f"{r['mean_score_anomaly']:.4f} | {r['train_seconds']:.0f} |"
        )
    print(f"| **mean** | **{sum(aurocs) / len(aurocs):.4f}** | | | | |")
    print(f"wall time {wall / 60:.1f} min with {args.jobs} jobs x {args.threads} thread(s)")


if __name__ == "__main__":
    main()
