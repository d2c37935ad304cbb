"""Write Fashion-MNIST rendered like photographs (random pose, colours, background, noise, JPEG)
in MVTec AD's layout, one folder per normal class (see :mod:`anomalia.data.photo`).

    python benchmarks/make_photo_like.py --normal-class 0 --out data/photo-like/class0
    anomalia benchmark configs/benchmarks/photo-like.yaml

The same ``--seed`` writes byte-identical files; an image's pixels do not depend on
``--normal-class`` or ``--max-per-class`` (each is drawn from its own seed), so the folders of
two normal classes show the same photographs, sorted differently. ``--out`` must not exist or
be empty. ``--style KEY=VALUE`` (repeatable) changes one range of :class:`PhotoStyle`, e.g.
``--style max_rotation=15 --style scale=0.85,1.0`` for an easier set.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from anomalia.data import load_dataset
from anomalia.data.photo import PhotoStyle, write_photo_like
from anomalia.errors import AnomaliaError


def parse_style(items: list[str]) -> PhotoStyle:
    """``["max_rotation=15", "scale=0.85,1.0"]`` -> ``PhotoStyle(max_rotation=15.0, ...)``."""
    fields = {f.name: f for f in dataclasses.fields(PhotoStyle)}
    changes: dict[str, object] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in fields or not value:
            raise ValueError(f"--style {item!r}: expected KEY=VALUE, KEY one of {sorted(fields)}")
        numbers = [float(v) for v in value.split(",")]
        default = getattr(PhotoStyle(), key)
        if isinstance(default, tuple):
            changes[key] = tuple(numbers)
        else:
            changes[key] = type(default)(numbers[0])
    return PhotoStyle(**changes)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--normal-class", type=int, required=True, help="the class named good")
    parser.add_argument("--out", required=True, help="folder to write, e.g. data/photo-like/class0")
    parser.add_argument(
        "--dataset", default="fashion_mnist", help="a registered dataset (default: %(default)s)"
    )
    parser.add_argument("--data-dir", default=None, help="where the dataset's files are")
    parser.add_argument("--canvas", type=int, default=None, help="output side (default: 48 for 28)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-per-class",
        type=int,
        default=1000,
        help="training images written per anomalous class, the pool labelled anomalies are "
        "drawn from; -1 = all (default: %(default)s, enough for gamma_l = 0.05 with k_l = 1: "
        "316 of 6000 normals)",
    )
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument(
        "--style", action="append", default=[], metavar="KEY=VALUE", help="a PhotoStyle range"
    )
    args = parser.parse_args(argv)
    try:
        style = parse_style(args.style)
    except ValueError as err:
        parser.error(str(err))
    try:
        data = load_dataset(args.dataset, args.data_dir)
        start = time.perf_counter()
        summary = write_photo_like(
            data,
            args.out,
            normal_class=args.normal_class,
            seed=args.seed,
            canvas_size=args.canvas,
            max_per_class=None if args.max_per_class == -1 else args.max_per_class,
            quality=args.quality,
            style=style,
        )
    except AnomaliaError as err:
        parser.exit(2, f"make_photo_like.py: error: {err}\n")
    print(summary)
    print(f"written in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
