"""Data layer: readers, the experiment protocol and samplers. Knows nothing about models."""

from anomalia.data.datasets import ImageData, available_datasets, load_dataset
from anomalia.data.folders import (
    expand_image_paths,
    iter_image_batches,
    load_image,
    load_mvtec,
    load_normal_anomaly,
)
from anomalia.data.idx import read_idx, write_idx
from anomalia.data.images import TensorImageDataset, to_image_tensor
from anomalia.data.protocol import Split, make_split
from anomalia.data.sampler import BalancedBatchSampler

__all__ = [
    "BalancedBatchSampler",
    "ImageData",
    "Split",
    "TensorImageDataset",
    "available_datasets",
    "expand_image_paths",
    "iter_image_batches",
    "load_dataset",
    "load_image",
    "load_mvtec",
    "load_normal_anomaly",
    "make_split",
    "read_idx",
    "to_image_tensor",
    "write_idx",
]
