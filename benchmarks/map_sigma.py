"""Choose the anomaly map's smoothing (``model.map_sigma``) on validation data, never the test set.

The validation data is a second synthetic-defect set written with another seed (its images,
defects and masks are independent of the seed-0 set the results table uses). Each method is
trained once on its training split; its maps of the validation set's test split are then
re-smoothed with every sigma (smoothing happens after the model, so one training serves all
sigmas) and scored with pixel AUROC and AUPRO:

    python benchmarks/map_sigma.py --data data/defects-val --seed 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from anomalia import Detector
from anomalia.data import load_dataset, make_split, write_defect_dataset
from anomalia.evaluation import aupro, auroc, pixel_auroc
from anomalia.models.common import AnomalyMap

SIGMAS = [0.0, 1.0, 2.0, 4.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/defects-val"))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--methods", nargs="+", default=["autoencoder", "knn"])
    parser.add_argument("--n-epochs", type=int, default=15)
    args = parser.parse_args()
    if not args.data.exists():
        write_defect_dataset(args.data, seed=args.seed)
    data = load_dataset("mvtec", args.data)
    assert data.test_masks is not None
    split = make_split(
        data.train_labels, data.test_labels, normal_class=0, anomaly_ratio=0.0, seed=0
    )
    test = data.test_images[split.test_indices]
    masks = data.test_masks[split.test_indices]
    print("| method | map_sigma | pixel AUROC | AUPRO | image AUROC, map_max | image AUROC, mean |")
    print("| --- | --- | --- | --- | --- | --- |")
    for method in args.methods:
        detector = Detector(method, n_epochs=args.n_epochs, progress_bar=False, seed=0).fit(
            data.train_images[split.train_indices], split.train_targets
        )
        mean = auroc(split.test_labels, detector.decision_function(test))  # no sigma in it
        for sigma in SIGMAS:
            detector.model_.anomaly_map = AnomalyMap(sigma, "mean")  # type: ignore[assignment]
            with torch.inference_mode():
                _, maps = detector.score_with_maps(test)
            image = auroc(split.test_labels, maps.reshape(len(maps), -1).max(axis=1))
            print(
                f"| {method} | {sigma:g} | {pixel_auroc(masks, maps):.4f} | "
                f"{aupro(masks, maps):.4f} | {image:.4f} | {mean:.4f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
