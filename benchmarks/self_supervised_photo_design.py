"""Scores for ``self_supervised`` on photographs, compared on a design split of the TRAINING set.

The same design split as ``self_supervised_design.py`` (per finished run: its held-out
validation normals against up to 300 never-seen training images of each other class), for
runs on photo-like data, where pixel scores fail and only what the network learned can rank.
Prints, per run and on the mean, the AUROC there of

- ``rotation``: the shipped rotation score (GEOM), on the image as it is;
- ``rotation, N views``: the rotation score averaged over N fixed views of the image (each
  view one draw from the ``light`` preset's ranges of affine move and colour jitter, the
  jitter always applied, the same draw for every image, so an image's score does not depend
  on its batch), the image itself first;
- ``neighbours``: nearest normals in the learned feature space (with knn's labelled-anomaly
  term), the shipped ``score=neighbours``;
- ``neighbours, 4 turns``: the same on the four turns' features side by side (unit length);
- ``mahalanobis``: the Mahalanobis distance of the encoder's features to the normal training
  images' (mean and covariance, shrunk by 1e-3 of the mean variance);
- ``rotation + neighbours``: each divided by its standard deviation over the normal training
  images (the neighbours' leaving each image out), as ``score=fused`` does with pixels;
- ``N views + neighbours``: the same with the view-averaged rotation score.

    python benchmarks/self_supervised_photo_design.py \\
        runs/benchmarks/photo-like-class*/runs/self_supervised/mvtec/class0/g0.05-k1-seed0
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from self_supervised_design import batched, design_split, run_script

from anomalia.evaluation import auroc
from anomalia.models.knn.torch_model import FeatureBankScorer, knn_distance
from anomalia.models.self_supervised.torch_model import quarter_turn

N_VIEWS = (4, 8)


def light_view(in_channels: int) -> torch.nn.Module:
    """The ``light`` preset's ranges (``anomalia.training.augment``) with the colour jitter
    always applied (the preset: p 0.8) and one draw for a whole batch (``same_on_batch``)."""
    import kornia.augmentation as K

    rgb = in_channels == 3
    return torch.nn.Sequential(
        K.RandomAffine(10.0, (0.05, 0.05), (0.95, 1.05), padding_mode="border", p=1.0,
                       same_on_batch=True),
        K.ColorJitter(0.1, 0.1, 0.1 if rgb else 0.0, 0.02 if rgb else 0.0, p=1.0,
                      same_on_batch=True),
    )  # fmt: skip


def apply_view(pipeline: torch.nn.Module, j: int, x: torch.Tensor) -> torch.Tensor:
    """View ``j`` of images ``x``: the same draw whatever the batch (seeded by ``j``)."""
    with torch.random.fork_rng():
        torch.manual_seed(1000 + j)
        return pipeline(x).clamp(0, 1)


def design_aurocs(run_dir: Path) -> dict[str, float]:
    design = design_split(run_dir)
    model, x, sets, labels = design.model, design.x, design.sets, design.labels
    view = light_view(x.shape[1])

    def view_rotation(b: torch.Tensor, n: int) -> torch.Tensor:
        b = b.float()
        scores = [model.rotation_score(b)] + [
            model.rotation_score(apply_view(view, j, b)) for j in range(1, n)
        ]
        return torch.stack(scores).mean(dim=0)

    def neighbours(b: torch.Tensor, **kwargs) -> torch.Tensor:
        return FeatureBankScorer.score(model, b, **kwargs)

    def turn_features(b: torch.Tensor) -> torch.Tensor:
        b = b.float()
        return F.normalize(torch.cat([model.encoder(quarter_turn(b, q)) for q in range(4)], 1))

    raw = {n: batched(lambda b: model.encoder(b.float()), x[i]) for n, i in sets.items()}
    mean = raw["train"].mean(0)
    cov = np.cov(raw["train"], rowvar=False)
    cov += 1e-3 * np.trace(cov) / len(cov) * np.eye(len(cov))
    precision = np.linalg.inv(cov)

    def mahalanobis(f: np.ndarray) -> np.ndarray:
        d = f - mean
        return np.sqrt(np.einsum("ij,jk,ik->i", d, precision, d))

    turns = {n: torch.from_numpy(batched(turn_features, x[i])) for n, i in sets.items()}
    turns_nb = {
        n: knn_distance(f, turns["train"], model.k, skip=int(n == "train")).numpy()
        for n, f in turns.items()
    }
    rot = {n: batched(model.rotation_score, x[i]) for n, i in sets.items()}
    nb = {n: batched(neighbours, x[i], exclude_self=n == "train") for n, i in sets.items()}
    rot_views = {
        v: {n: batched(view_rotation, x[i], n=v) for n, i in sets.items() if n != "val"}
        for v in N_VIEWS
    }

    def over_spread(scores: dict[str, np.ndarray]) -> np.ndarray:
        return scores["q"] / scores["train"].std()

    out = {"rotation": auroc(labels, rot["q"])}
    out.update({f"rotation, {v} views": auroc(labels, s["q"]) for v, s in rot_views.items()})
    out["neighbours"] = auroc(labels, nb["q"])
    out["neighbours, 4 turns"] = auroc(labels, turns_nb["q"])
    out["mahalanobis"] = auroc(labels, mahalanobis(raw["q"]))
    out["rotation + neighbours"] = auroc(labels, over_spread(rot) + over_spread(nb))
    out.update(
        {
            f"{v} views + neighbours": auroc(labels, over_spread(s) + over_spread(nb))
            for v, s in rot_views.items()
        }
    )
    return out


def main() -> None:
    run_script(
        __doc__,
        design_aurocs,
        lambda d: next(p for p in d.parts if p.startswith("photo-like")) + "/" + d.name,
    )


if __name__ == "__main__":
    main()
