"""Data layer: readers, the experiment protocol and samplers. Knows nothing about models."""

from anomalia.data.datasets import (
    ImageData,
    available_datasets,
    download,
    get_dataset_spec,
    load_dataset,
)
from anomalia.data.folders import (
    IMAGE_SUFFIXES,
    expand_image_paths,
    iter_image_batches,
    load_image,
    load_mvtec,
    load_normal_anomaly,
)
from anomalia.data.idx import read_idx, write_idx
from anomalia.data.images import TensorImageDataset, collate_batch, to_image_tensor
from anomalia.data.protocol import Split, make_split
from anomalia.data.sampler import BalancedBatchSampler

__all__ = [
    "IMAGE_SUFFIXES",
    "BalancedBatchSampler",
    "ImageData",
    "Split",
    "TensorImageDataset",
    "available_datasets",
    "collate_batch",
    "download",
    "expand_image_paths",
    "get_dataset_spec",
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
