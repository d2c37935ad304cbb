"""How the `knn` detector's settings were chosen: on a split of the Fashion-MNIST TRAINING set,
never on the test set.

Per normal class c (and per seed): 5,000 training images of c form the normal bank; the queries
are the other ~1,000 training images of c and 1,000 training images of each other class. With
``--anomaly-weights``, 263 training images of ONE other class (gamma_l = .05, k_l = 1) form the
labelled-anomaly bank and are excluded from the queries. Prints mean AUROC over the ten classes
as Markdown rows for docs/results.md.

    python benchmarks/knn_design.py --features          # blur, k and the variants that lost
    python benchmarks/knn_design.py --anomaly-weights   # the exponent of d_anomaly, 3 seeds
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from anomalia.data import load_dataset
from anomalia.models.knn import KnnScorer, knn_distance

Scorer = Callable[[torch.Tensor, torch.Tensor], np.ndarray]


def splits(labels: np.ndarray, seed: int, labelled: bool = False):
    """Yield (bank, labelled anomalies, queries, query labels) index arrays for each class."""
    rng = np.random.default_rng(seed)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        bank, held_out = idx[:5000], idx[5000:]
        known = np.empty(0, dtype=np.int64)
        if labelled:
            other = rng.choice([o for o in range(10) if o != c])
            known = rng.permutation(np.flatnonzero(labels == other))[:263]
        anomalies = [
            rng.choice(np.setdiff1d(np.flatnonzero(labels == o), known), 1000, replace=False)
            for o in range(10)
            if o != c
        ]
        queries = np.concatenate([held_out, *anomalies])
        yield bank, known, queries, np.r_[np.zeros(len(held_out)), np.ones(9000)]


def knn_scorer(**params) -> Scorer:
    def score(bank: torch.Tensor, queries: torch.Tensor) -> np.ndarray:
        model = KnnScorer(1, 28, **params)
        model.set_banks(model.features(bank), model.features(bank[:0]))
        return model.score(queries).numpy()

    return score


def feature_scorer(transform: Callable[[torch.Tensor], torch.Tensor], k: int = 3) -> Scorer:
    """k-NN distance in the space of ``transform`` applied to sigma-1 blurred images."""
    blur = KnnScorer(1, 28, blur_sigma=1.0).features

    def score(bank: torch.Tensor, queries: torch.Tensor) -> np.ndarray:
        fb, fq = transform(blur(bank)), transform(blur(queries))
        return knn_distance(fq, fb, k).numpy()

    return score


def variants() -> dict[str, Scorer]:
    torch.manual_seed(0)
    filters = torch.randn(64, 1, 5, 5)
    filters /= filters.flatten(1).norm(dim=1).view(-1, 1, 1, 1)

    def random_conv(f: torch.Tensor) -> torch.Tensor:  # (B, 784) -> (B, 64 * 7 * 7)
        h = F.relu(F.conv2d(f.view(-1, 1, 28, 28), filters, padding=2))
        return F.avg_pool2d(h, 4).flatten(1) * 0.5

    def gradients(f: torch.Tensor) -> torch.Tensor:  # pixels + horizontal/vertical differences
        img = f.view(-1, 1, 28, 28)
        gx = F.pad(img[..., :, 1:] - img[..., :, :-1], (0, 1))
        gy = F.pad(img[..., 1:, :] - img[..., :-1, :], (0, 0, 0, 1))
        return torch.cat([f, gx.flatten(1), gy.flatten(1)], dim=1)

    def multiscale(f: torch.Tensor) -> torch.Tensor:  # 28x28 and 14x14, equal weight
        return torch.cat([f, 2 * F.avg_pool2d(f.view(-1, 1, 28, 28), 2).flatten(1)], dim=1)

    def flipped_bank(bank: torch.Tensor, queries: torch.Tensor) -> np.ndarray:
        return knn_scorer()(torch.cat([bank, bank.flip(-1)]), queries)

    def density_normalised(bank: torch.Tensor, queries: torch.Tensor) -> np.ndarray:
        """Distance divided by the k-NN radius of the bank entries it lands near (LOF-like)."""
        model = KnnScorer(1, 28)
        fb, fq = model.features(bank), model.features(queries)
        radius = torch.cdist(fb, fb).topk(4, largest=False).values[:, 1:].mean(1)
        d, i = torch.cdist(fq, fb).topk(3, largest=False)
        return (d.mean(1) / radius[i].mean(1) ** 0.5).numpy()

    table: dict[str, Scorer] = {}
    for sigma in (0.0, 0.7, 1.0, 1.5, 2.0):
        for k in (1, 3):
            table[f"blur sigma {sigma:g}, k = {k}"] = knn_scorer(blur_sigma=sigma, k=k)
    table["sigma 1, k = 5"] = knn_scorer(k=5)
    table["sigma 1, k = 3, bank + its mirror images"] = flipped_bank
    table["sigma 1, k = 3, 14x14 + 28x28 features"] = feature_scorer(multiscale)
    table["sigma 1, k = 3, pixels + gradients"] = feature_scorer(gradients)
    table["sigma 1, k = 3, 64 random 5x5 conv filters + ReLU + pool"] = feature_scorer(random_conv)
    table["sigma 1, k = 3, divided by sqrt of local k-NN radius"] = density_normalised
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", action="store_true")
    parser.add_argument("--anomaly-weights", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("fashion_mnist")
    images = torch.as_tensor(data.train_images).float().div(255)
    if images.dim() == 3:
        images = images[:, None]  # (N, 1, 28, 28)
    labels = np.asarray(data.train_labels)

    if args.features:
        print("| variant | mean AUROC (training split) |\n| --- | --- |")
        for name, scorer in variants().items():
            aurocs = [
                roc_auc_score(y, scorer(images[bank], images[q]))
                for bank, _, q, y in splits(labels, seed=0)
            ]
            print(f"| {name} | {100 * np.mean(aurocs):.2f} |", flush=True)

    if args.anomaly_weights:
        weights = [0.0, 0.1, 0.25, 0.5, 0.75, 1.0]
        print("| seed | " + " | ".join(f"weight {w:g}" for w in weights) + " |")
        print("| --- |" + " --- |" * len(weights))
        for seed in (100, 101, 102):
            aurocs = {w: [] for w in weights}
            for bank, known, q, y in splits(labels, seed, labelled=True):
                model = KnnScorer(1, 28)
                model.set_banks(model.features(images[bank]), model.features(images[known]))
                for w in weights:
                    model.anomaly_weight = w
                    aurocs[w].append(roc_auc_score(y, model.score(images[q]).numpy()))
            row = " | ".join(f"{100 * np.mean(aurocs[w]):.2f}" for w in weights)
            print(f"| {seed} | {row} |", flush=True)


if __name__ == "__main__":
    main()
