"""How ``self_supervised``'s settings for centred thumbnails were chosen: on a design split of
the Fashion-MNIST TRAINING set, never on the test set.

With k_l = 1 a run's validation split holds only the one labelled anomaly class (which the
labelled-anomaly term already makes easy: validation AUROC > 0.99), so it cannot say how a
score does on the eight unseen classes. The design split can: per finished run, its held-out
validation normals against up to 300 training images of each other class that the run never
saw (neither trained on nor validated with). Prints, per run and on the mean, the AUROC there of

- ``rotation``: the rotation score (GEOM);
- ``neighbours``: nearest normals in the learned feature space, with the labelled-anomaly term;
- ``pixels``: knn's blurred-pixel score (the run's own ``pixels`` scorer when it has one, else
  knn with its defaults fitted on the run's training split: knn has nothing to train);
- ``rank sum``: the sum of the rotation and pixel scores' ranks (needs the whole query set at
  once, so it cannot score one image; a yardstick, not a detector);
- ``fused``: the shipped ``score=fused``, rotation / spread + pixels / spread with the spreads
  (standard deviations) over the run's normal training images;
- ``fused, held-out spreads``: the same with spreads over the validation normals;
- ``fused + neighbours``: the three scores each over its spread on the training normals;
- ``fused, mirror-averaged turns``: the rotation score averaged over the image and its mirror
  image (left-right), plus the pixel score, each over its spread.

    python benchmarks/self_supervised_design.py \
        runs/benchmarks/deep-sad-self-supervised/runs/self_supervised/fashion_mnist/*/g0.05-k1-seed0
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

from anomalia.data.images import to_image_tensor
from anomalia.evaluation import auroc
from anomalia.experiment import prepare_data
from anomalia.models.knn import KnnConfig
from anomalia.models.knn.torch_model import FeatureBankScorer
from anomalia.rundir import RunDir

PER_CLASS = 300


@torch.no_grad()
def batched(score, images: torch.Tensor, **kwargs) -> np.ndarray:
    return torch.cat(
        [score(images[i : i + 512], **kwargs) for i in range(0, len(images), 512)]
    ).numpy()


@dataclass
class DesignSplit:
    """A finished run's detector and its design split, all from the TRAINING images ``x``:
    ``sets`` indexes ``q`` (the queries: held-out validation normals, then up to
    ``PER_CLASS`` never-seen images of each other class; ``labels`` 1 for those), ``train``
    (the run's normal training images) and ``val`` (the held-out normals)."""

    model: torch.nn.Module
    x: torch.Tensor
    sets: dict[str, np.ndarray]
    labels: np.ndarray
    train_anomalies: np.ndarray


def design_split(run_dir: Path) -> DesignSplit:
    run = RunDir(run_dir)
    config, split = run.read_config(), run.read_split()
    data, _ = prepare_data(config)
    model = run.load_detector(accelerator="cpu").model_.eval()
    seen = np.zeros(len(data.train_labels), dtype=bool)
    seen[split.train_indices] = seen[split.val_indices] = True
    held_out = split.val_indices[split.val_targets == 0]
    rng = np.random.default_rng(0)
    others = [
        rng.permutation(np.flatnonzero((data.train_labels == c) & ~seen))[:PER_CLASS]
        for c in np.unique(data.train_labels)
        if c != split.normal_class
    ]
    queries = np.concatenate([held_out, *others])
    labels = np.r_[np.zeros(len(held_out)), np.ones(len(queries) - len(held_out))].astype(int)
    train_normals = split.train_indices[split.train_targets == 0]
    train_anomalies = split.train_indices[split.train_targets == 1]
    sets = {"q": queries, "train": train_normals, "val": held_out}
    return DesignSplit(model, to_image_tensor(data.train_images), sets, labels, train_anomalies)


def design_aurocs(run_dir: Path) -> dict[str, float]:
    design = design_split(run_dir)
    model, x, sets, labels = design.model, design.x, design.sets, design.labels
    train_normals, train_anomalies = sets["train"], design.train_anomalies

    pixels = model.pixels
    if pixels is None:
        pixels = KnnConfig().build(x.shape[1], x.shape[-1])
        pixels.set_banks(pixels.features(x[train_normals]), pixels.features(x[train_anomalies]))

    def neighbours(b: torch.Tensor, **kwargs) -> torch.Tensor:
        return FeatureBankScorer.score(model, b, **kwargs)

    def mirror_averaged(b: torch.Tensor) -> torch.Tensor:
        return (model.rotation_score(b) + model.rotation_score(b.flip(3))) / 2

    rot = {n: batched(model.rotation_score, x[i]) for n, i in sets.items()}
    pix = {n: batched(pixels.score, x[i], exclude_self=n == "train") for n, i in sets.items()}
    nb = {n: batched(neighbours, x[i], exclude_self=n == "train") for n, i in sets.items()}
    mirror = {n: batched(mirror_averaged, x[sets[n]]) for n in ("q", "train")}

    def over_spread(scores: dict[str, np.ndarray], spreads: str = "train") -> np.ndarray:
        return scores["q"] / scores[spreads].std()

    return {
        "rotation": auroc(labels, rot["q"]),
        "neighbours": auroc(labels, nb["q"]),
        "pixels": auroc(labels, pix["q"]),
        "rank sum": auroc(labels, rankdata(rot["q"]) + rankdata(pix["q"])),
        "fused": auroc(labels, over_spread(rot) + over_spread(pix)),
        "fused, held-out spreads": auroc(labels, over_spread(rot, "val") + over_spread(pix, "val")),
        "fused + neighbours": auroc(labels, over_spread(rot) + over_spread(pix) + over_spread(nb)),
        "fused, mirror-averaged turns": auroc(labels, over_spread(mirror) + over_spread(pix)),
    }


def print_table(rows: dict[str, dict[str, float]]) -> None:
    """A Markdown table of AUROCs in percent, a row per run and their mean."""
    columns = list(next(iter(rows.values())))
    print("| run | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for name, row in rows.items():
        print(f"| {name} | " + " | ".join(f"{100 * row[c]:.2f}" for c in columns) + " |")
    means = [100 * np.mean([r[c] for r in rows.values()]) for c in columns]
    print("| mean | " + " | ".join(f"{m:.2f}" for m in means) + " |")


def run_script(
    doc: str,
    aurocs: Callable[[Path], dict[str, float]],
    name: Callable[[Path], str] = lambda run_dir: f"{run_dir.parent.name}/{run_dir.name}",
) -> None:
    """A design script's command line: ``aurocs`` of each run directory given, a row each
    (printed as it is done), then the table."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for run_dir in args.run_dirs:
        rows[name(run_dir)] = aurocs(run_dir)
        print(name(run_dir), {k: round(100 * v, 2) for k, v in rows[name(run_dir)].items()})
    print_table(rows)


def main() -> None:
    run_script(__doc__, design_aurocs)


if __name__ == "__main__":
    main()
