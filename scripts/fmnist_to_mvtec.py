"""Write Fashion-MNIST as PNG files in the MVTec AD layout, with one class as "good".

    python scripts/fmnist_to_mvtec.py OUT_DIR [--normal-class 0]

OUT_DIR/train/good/ and OUT_DIR/test/good/ get the normal class; OUT_DIR/train/<k>-<name>/ and
OUT_DIR/test/<k>-<name>/ every other class (the training ones are the pool labelled anomalies
are drawn from), so `anomalia train --dataset mvtec --data-dir OUT_DIR` runs the same protocol
as the IDX files. Folder names sort in class order, so defect class k is Fashion-MNIST class k.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from anomalia.data import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--normal-class", type=int, default=0)
    args = parser.parse_args()
    data = load_dataset("fashion_mnist")
    for split, images, labels in (
        ("train", data.train_images, data.train_labels),
        ("test", data.test_images, data.test_labels),
    ):
        for k, name in enumerate(data.class_names):
            folder = "good" if k == args.normal_class else f"{k}-{name.replace('/', '-')}"
            target = args.out_dir / split / folder
            target.mkdir(parents=True, exist_ok=True)
            for i in (labels == k).nonzero()[0]:
                Image.fromarray(images[i, 0]).save(target / f"{i:05d}.png")
        print(f"{split}: {len(images)} images written under {args.out_dir / split}")


if __name__ == "__main__":
    main()
