"""Does combining methods help? Rank-sum fusion of saved test scores, per class, seed 0.

Reads the ``scores.csv`` of the Deep SAD protocol benchmarks (knn from deep-sad-knn, the others
from deep-sad-cpu) and prints mean AUROC over the ten classes for each method alone and for rank
sums of knn with the others. This looks at test scores after the fact: it can only say whether
a fused detector is worth building, not how good one would be.

    python benchmarks/score_fusion.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

ROOT = Path("runs/benchmarks")
SOURCES = {"knn": "deep-sad-knn", "deep_sad": "deep-sad-cpu", "autoencoder": "deep-sad-cpu"}


def scores(method: str, normal_class: int, ratio: str) -> tuple[np.ndarray, np.ndarray]:
    path = (
        ROOT / SOURCES[method] / "runs" / method / "fashion_mnist"
        / f"class{normal_class}" / f"g{ratio}-k1-seed0" / "scores.csv"
    )  # fmt: skip
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return np.array([int(r["label"]) for r in rows]), np.array([float(r["score"]) for r in rows])


def main() -> None:
    combos = [("knn",), ("deep_sad",), ("autoencoder",), ("knn", "deep_sad"),
              ("knn", "autoencoder"), ("knn", "deep_sad", "autoencoder")]  # fmt: skip
    print("| gamma_l | " + " | ".join(" + ".join(c) for c in combos) + " |")
    print("| --- |" + " --- |" * len(combos))
    for ratio in ("0", "0.05"):
        means = []
        for combo in combos:
            aurocs = []
            for c in range(10):
                loaded = [scores(m, c, ratio) for m in combo]
                labels = loaded[0][0]
                assert all(np.array_equal(labels, y) for y, _ in loaded)  # same test order
                aurocs.append(roc_auc_score(labels, sum(rankdata(s) for _, s in loaded)))
            means.append(100 * np.mean(aurocs))
        print(f"| {ratio} | " + " | ".join(f"{m:.1f}" for m in means) + " |")


if __name__ == "__main__":
    main()
