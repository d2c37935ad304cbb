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

from pathlib import Path

import numpy as np
from self_supervised_design import batched, design_split, run_script

from anomalia.evaluation import auroc


def design_aurocs(run_dir: Path) -> dict[str, float]:
    design = design_split(run_dir)
    model, x, sets, labels = design.model, design.x, design.sets, design.labels

    rot = {n: batched(model.member_rotation_scores, x[i]) for n, i in sets.items() if n != "val"}
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
    run_script(__doc__, design_aurocs, lambda d: f"{d.parents[4].name}/{d.parent.name}/{d.name}")


if __name__ == "__main__":
    main()
