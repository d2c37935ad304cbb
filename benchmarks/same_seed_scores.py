"""Same seed, same scores: the check that a refactor changed no number.

Trains every registered method on Fashion-MNIST class 0 with the run defaults (the study's
settings, seed 0), one CPU thread per run so the arithmetic is repeatable, and keeps each run's
``scores.csv``. Run it on the code before a change and after it, then compare:

    python benchmarks/same_seed_scores.py run --out /tmp/before        # on the old code
    python benchmarks/same_seed_scores.py run --out /tmp/after         # on the new code
    python benchmarks/same_seed_scores.py compare /tmp/before /tmp/after

``--n-epochs`` shortens every run (the code paths are the same; only the count of updates
changes; Deep SAD then pretrains for one epoch of them). ``compare`` exits 1 if any method's
scores differ.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

METHODS = ["autoencoder", "gan", "dual_gan", "deep_sad", "classifier", "knn", "self_supervised"]
RUN_NAME = "same-seed"


def scores_file(out: Path, method: str) -> Path:
    return out / method / "fashion_mnist" / "class0" / RUN_NAME / "scores.csv"


def run(out: Path, methods: list[str], n_epochs: int | None) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for method in methods:
        if scores_file(out, method).is_file():
            print(f"{method}: already done")
            continue
        argv = [sys.executable, "-m", "anomalia.cli", "train", "--method", method]
        argv += ["--normal-class", "0", "--seed", "0", "--output-dir", str(out)]
        argv += ["--name", RUN_NAME, "--no-plots", "--no-progress-bar", "--no-download"]
        if n_epochs is not None:
            argv += ["--n-epochs", str(n_epochs)]
            if method == "deep_sad":
                argv += ["--set", "model.n_pretrain_epochs=1"]
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"{method}: {time.perf_counter() - start:.0f} s", flush=True)


def read_scores(path: Path) -> list[tuple[str, str]]:
    with path.open() as handle:
        return [(row["test_index"], row["score"]) for row in csv.DictReader(handle)]


def compare(before: Path, after: Path, methods: list[str]) -> int:
    status = 0
    for method in methods:
        a, b = scores_file(before, method), scores_file(after, method)
        if not (a.is_file() and b.is_file()):
            print(f"{method}: missing {a if not a.is_file() else b}")
            status = 1
            continue
        rows_a, rows_b = read_scores(a), read_scores(b)
        same = rows_a == rows_b
        diff = max(
            (abs(float(x[1]) - float(y[1])) for x, y in zip(rows_a, rows_b, strict=False)),
            default=float("nan"),
        )
        print(
            f"{method}: {len(rows_a)} scores, "
            f"{'identical' if same else f'DIFFERENT (largest difference {diff:.3g})'}"
        )
        status |= 0 if same else 1
    return status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="train every method and keep its scores.csv")
    p_run.add_argument("--out", type=Path, required=True)
    p_run.add_argument("--methods", nargs="+", default=METHODS)
    p_run.add_argument("--n-epochs", type=int, help="override the run default (15)")
    p_cmp = sub.add_parser("compare", help="compare two `run` outputs score by score")
    p_cmp.add_argument("before", type=Path)
    p_cmp.add_argument("after", type=Path)
    p_cmp.add_argument("--methods", nargs="+", default=METHODS)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, args.methods, args.n_epochs)
        return 0
    return compare(args.before, args.after, args.methods)


if __name__ == "__main__":
    sys.exit(main())
