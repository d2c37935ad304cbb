"""Write the synthetic-defect dataset the ``defects`` benchmark grid reads (MVTec AD's layout,
pixel-exact masks; see :mod:`anomalia.data.synthetic`).

    python benchmarks/make_defects.py --out data/defects
    anomalia benchmark configs/benchmarks/defects.yaml

The same ``--seed`` writes byte-identical files. ``--out`` must not exist or be empty.
"""

from __future__ import annotations

import argparse

from anomalia.data.synthetic import write_defect_dataset
from anomalia.errors import AnomaliaError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", default="data/defects", help="folder to write (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3)
    parser.add_argument("--n-train-good", type=int, default=400)
    parser.add_argument("--n-train-defects", type=int, default=5, help="per defect kind")
    parser.add_argument("--n-test-good", type=int, default=100)
    parser.add_argument("--n-test-defects", type=int, default=25, help="per defect kind")
    args = parser.parse_args(argv)
    try:
        summary = write_defect_dataset(
            args.out,
            n_train_good=args.n_train_good,
            n_train_defects=args.n_train_defects,
            n_test_good=args.n_test_good,
            n_test_defects=args.n_test_defects,
            size=args.size,
            seed=args.seed,
            channels=args.channels,
        )
    except AnomaliaError as err:
        parser.exit(2, f"make_defects.py: error: {err}\n")
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
