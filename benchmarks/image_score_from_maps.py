"""Image AUROC of the two image scores of a map-making run: the mean error (the study's score)
and the maximum of the smoothed anomaly map (``model.image_score: map_max``).

``image_score`` changes scoring only, not training (no loss reads it), so a run trained with
the default is rescored both ways from its saved weights instead of being trained twice:

    python benchmarks/image_score_from_maps.py runs/benchmarks/defects/runs/*/mvtec/class0/*
"""

from __future__ import annotations

import argparse
from pathlib import Path

from anomalia.data import load_dataset
from anomalia.evaluation import auroc
from anomalia.rundir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dirs", nargs="+", type=Path)
    args = parser.parse_args()
    print("| method | run | image AUROC, mean error | image AUROC, map maximum |")
    print("| --- | --- | --- | --- |")
    for path in args.run_dirs:
        run = RunDir(path)
        config = run.read_config()
        detector = run.load_detector("cpu")
        if not detector.has_maps:
            continue
        data = load_dataset(config.data.dataset, config.data.data_dir)
        split = run.read_split()
        scores, maps = detector.score_with_maps(data.test_images[split.test_indices])
        map_max = maps.reshape(len(maps), -1).max(axis=1)
        mean_auroc, max_auroc = auroc(split.test_labels, scores), auroc(split.test_labels, map_max)
        print(f"| {config.method} | {path.name} | {mean_auroc:.4f} | {max_auroc:.4f} |", flush=True)


if __name__ == "__main__":
    main()
