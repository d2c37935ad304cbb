"""The self-supervised detector's two scores compared on the validation split of finished runs.

A run of ``self_supervised`` keeps both what its rotation score needs (the rotation head) and
what its neighbour score needs (the feature banks), so one trained detector can be scored both
ways. This prints, per run directory, the validation AUROC of each score (the split the run
saved: its validation normals against its validation labelled anomalies), and with ``--test``
the test AUROC too, for the record; the choice of ``model.score`` is made on validation only.

    python benchmarks/self_supervised_scores.py \
        runs/benchmarks/photo-like-class*/runs/self_supervised/mvtec/class0/g0.05-k1-seed0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from anomalia.evaluation import auroc
from anomalia.experiment import prepare_data
from anomalia.rundir import RunDir

SCORES = ("rotation", "neighbours")


def score_aurocs(run_dir: Path, with_test: bool) -> dict[str, float]:
    run = RunDir(run_dir)
    config, split = run.read_config(), run.read_split()
    data, _ = prepare_data(config)
    detector = run.load_detector(accelerator="cpu")
    parts = {"val": (data.train_images[split.val_indices], split.val_targets)}
    if with_test:
        parts["test"] = (data.test_images[split.test_indices], split.test_labels)
    out: dict[str, float] = {}
    for score in SCORES:
        detector.model_.score_kind = score
        for part, (images, labels) in parts.items():
            if len(np.unique(labels)) == 2:
                out[f"{part} {score}"] = auroc(labels, detector.decision_function(images))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    parser.add_argument("--test", action="store_true", help="also print test AUROC")
    args = parser.parse_args()
    rows = {str(d): score_aurocs(d, args.test) for d in args.run_dirs}
    columns = sorted({c for r in rows.values() for c in r})
    print("| run | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for name, row in rows.items():
        cells = [f"{row.get(c, float('nan')):.4f}" for c in columns]
        print(f"| {name} | " + " | ".join(cells) + " |")
    means = {c: np.mean([r[c] for r in rows.values() if c in r]) for c in columns}
    print("| mean | " + " | ".join(f"{means[c]:.4f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
