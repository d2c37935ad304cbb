"""Scoring speed of ``self_supervised``'s scoring path (the encoder on channels-last tensors,
batch norm folded into the convolutions) against the plain modules that training runs, in one
process, alternated.

Rates from separate processes or sittings differ by up to ~40 % here for the same code
(docs/benchmarks.md), so the two paths are timed in turns on the same model, the same 10,000
Fashion-MNIST test images (28x28, batches of 512) and the same torch threads; the scores of the
two are compared too. ``--profile`` shows where the plain path's time goes.

    python benchmarks/scoring_path.py --repeats 5
    python benchmarks/scoring_path.py --profile   # where the time goes, block by block
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from anomalia.data import load_dataset, make_split
from anomalia.models.self_supervised import SelfSupervisedConfig
from anomalia.models.self_supervised.torch_model import ConvEncoder


def plain_modules(self: ConvEncoder, x: torch.Tensor) -> torch.Tensor:
    return self.net(x).mean(dim=(2, 3))


def scores(model: torch.nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    with torch.inference_mode():
        out = torch.cat([model.score(images[i : i + 512]) for i in range(0, len(images), 512)])
    return out, len(images) / (time.perf_counter() - start)


def profile(model: torch.nn.Module, images: torch.Tensor) -> None:
    """The rotation score's time by operator (torch's profiler) with the plain modules, then
    each encoder block's time and multiply-add rate on one batch of 512."""
    from torch.profiler import profile as torch_profile

    batch = images[:512]
    ConvEncoder.forward = plain_modules
    with torch.inference_mode(), torch_profile() as prof:
        for _ in range(4):
            model.score(batch)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=6))
    print("| block | input (B, C, H, W) | ms per batch | G multiply-adds/s |")
    print("| --- | --- | --- | --- |")
    h = batch
    with torch.inference_mode():
        for j, block in enumerate(model.encoder.net):
            start = time.perf_counter()
            for _ in range(8):
                out = block(h)
            seconds = (time.perf_counter() - start) / 8
            conv = block[0]
            macs = out[0].numel() * conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
            rate = len(h) * macs / seconds / 1e9
            print(f"| {j} | {tuple(h.shape)} | {1000 * seconds:.1f} | {rate:.1f} |")
            h = out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="profile the rotation score")
    args = parser.parse_args()
    data = load_dataset("fashion_mnist")
    split = make_split(data.train_labels, data.test_labels, normal_class=0)
    train = torch.from_numpy(data.train_images[split.train_indices]).float() / 255
    test = torch.from_numpy(data.test_images).float() / 255
    print(f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")
    if args.profile:
        torch.manual_seed(0)
        profile(SelfSupervisedConfig().build(1, 28).eval(), test)
        return
    print("\n| score | path | images/s, median | best | all runs | max abs score difference |")
    print("| --- | --- | --- | --- | --- | --- |")
    for score in ("rotation", "fused"):
        torch.manual_seed(0)
        config = SelfSupervisedConfig(score=score, views="none" if score == "fused" else "strong")
        model = config.build(1, 28).eval()
        with torch.no_grad():  # untrained weights cost the same arithmetic as trained ones
            model.set_banks(model.features(train), torch.zeros(0, model.feature_dim))
            if model.pixels is not None:
                pixels = model.pixels
                pixels.set_banks(pixels.features(train), torch.zeros(0, pixels.feature_dim))
        fast = ConvEncoder.forward
        rates: dict[str, list[float]] = {"scoring": [], "plain modules": []}
        results = {}
        for _ in range(args.repeats):
            for path in rates:
                ConvEncoder.forward = fast if path == "scoring" else plain_modules
                results[path], rate = scores(model, test)
                rates[path].append(rate)
        ConvEncoder.forward = fast
        diff = (results["scoring"] - results["plain modules"]).abs().max().item()
        for path, r in rates.items():
            runs = ", ".join(f"{v:.0f}" for v in r)
            print(
                f"| {score} | {path} | {statistics.median(r):.0f} | {max(r):.0f} | {runs} | "
                f"{diff:.1e} |"
            )


if __name__ == "__main__":
    main()
