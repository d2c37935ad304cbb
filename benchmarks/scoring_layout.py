"""Scoring speed of ``self_supervised`` with its encoder on channels-last tensors (what scoring
does) against the default layout (what training does), in one process, alternated.

Rates from separate processes or sittings differ by up to ~40 % here for the same code
(docs/benchmarks.md), so the two layouts are timed in turns on the same model, the same 10,000
Fashion-MNIST test images (28x28, batches of 512) and the same torch threads; the scores of the
two are compared too.

    python benchmarks/scoring_layout.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from anomalia.data import load_dataset, make_split
from anomalia.models.self_supervised import SelfSupervisedConfig
from anomalia.models.self_supervised.torch_model import ConvEncoder


def default_layout(self: ConvEncoder, x: torch.Tensor) -> torch.Tensor:
    return self.net(x).mean(dim=(2, 3))


def scores(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    with torch.inference_mode():
        out = torch.cat([model.score(images[i : i + 512]) for i in range(0, len(images), 512)])
    return out, len(images) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    data = load_dataset("fashion_mnist")
    split = make_split(data.train_labels, data.test_labels, normal_class=0)
    train = torch.from_numpy(data.train_images[split.train_indices]).float() / 255
    test = torch.from_numpy(data.test_images).float() / 255
    print(f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    print("\n| score | layout | images/s, median | best | all runs | max abs score difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for score in ("rotation", "fused"):
        torch.manual_seed(0)
        config = SelfSupervisedConfig(score=score, views="none" if score == "fused" else "strong")
        model = config.build(1, 28).eval()
        with torch.no_grad():  # untrained weights cost the same arithmetic as trained ones
            model.set_banks(model.features(train), torch.zeros(0, model.feature_dim))
            if model.pixels is not None:
                model.pixels.set_banks(model.pixels.features(train), torch.zeros(0, 784))
        fast = ConvEncoder.forward
        rates: dict[str, list[float]] = {"channels-last": [], "default": []}
        results = {}
        for _ in range(args.repeats):
            for layout in rates:
                ConvEncoder.forward = fast if layout == "channels-last" else default_layout
                results[layout], rate = scores(model, test)
                rates[layout].append(rate)
        ConvEncoder.forward = fast
        diff = (results["channels-last"] - results["default"]).abs().max().item()
        for layout, r in rates.items():
            runs = ", ".join(f"{v:.0f}" for v in r)
            print(
                f"| {score} | {layout} | {statistics.median(r):.0f} | {max(r):.0f} | {runs} | "
                f"{diff:.1e} |"
            )


if __name__ == "__main__":
    main()
