"""Does an ensemble (``model.members`` > 1) of ``self_supervised`` beat its own members alone?

Per finished run with several members, on the design split of ``self_supervised_design.py``
(its held-out validation normals against up to 300 never-seen TRAINING images of each other
class; never the test set): the AUROC of the rotation score of each member alone, their mean,
and the ensemble's (the mean of the members' scores, the detector's own ``score=rotation``).
For runs with ``score=fused`` also the fused score with each member's rotation score alone
(mean over members) and the ensemble's (the detector's own score). Each member is a network
trained from its own initial weights on the same batches, so "member alone" is what a run
with ``members: 1`` and that initialisation would have given.

    python benchmarks/self_supervised_members.py \\
        runs/benchmarks/photo-like-class*-m3/runs/self_supervised/mvtec/class0/g0.05-k1-seed0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from self_supervised_design import batched, design_split, print_table

from anomalia.evaluation import auroc
from anomalia.models.self_supervised.torch_model import quarter_turn


def design_aurocs(run_dir: Path) -> dict[str, float]:
    design = design_split(run_dir)
    model, x, sets, labels = design.model, design.x, design.sets, design.labels

    def per_member(b: torch.Tensor) -> torch.Tensor:
        """Each member's rotation score (B, members)."""
        terms = [
            F.log_softmax(model.rotation_logits(quarter_turn(b, q)), dim=2)[:, :, q]
            for q in range(4)
        ]
        return -torch.stack(terms).mean(dim=0)

    rot = {n: batched(per_member, x[i]) for n, i in sets.items() if n != "val"}  # (N, members)
    members = rot["q"].shape[1]
    out = {f"member {m + 1}": auroc(labels, rot["q"][:, m]) for m in range(members)}
    out["members' mean"] = float(np.mean(list(out.values())))
    out["ensemble"] = auroc(labels, rot["q"].mean(axis=1))
    if model.pixels is not None:
        pix = {
            n: batched(model.pixels.score, x[i], exclude_self=n == "train")
            for n, i in sets.items()
            if n != "val"
        }
        pixels = pix["q"] / pix["train"].std()
        fused = [rot["q"][:, m] / rot["train"][:, m].std() + pixels for m in range(members)]
        out["fused, members' mean"] = float(np.mean([auroc(labels, f) for f in fused]))
        out["fused, ensemble"] = auroc(labels, batched(model.score, x[sets["q"]]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for run_dir in args.run_dirs:
        name = f"{run_dir.parents[4].name}/{run_dir.parent.name}/{run_dir.name}"
        rows[name] = design_aurocs(run_dir)
        print(name, {k: round(100 * v, 2) for k, v in rows[name].items()}, flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
