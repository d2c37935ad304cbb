"""Data layer: readers, the experiment protocol and samplers. Knows nothing about models."""

from anomalia.data.fetch import download
from anomalia.data.folders import MASK_MODES, MaskMode, load_mvtec, load_normal_anomaly
from anomalia.data.idx import read_idx, write_idx
from anomalia.data.image_files import (
    IMAGE_SUFFIXES,
    expand_image_paths,
    iter_image_batches,
    load_image,
    load_mask,
)
from anomalia.data.images import TensorImageDataset, collate_batch, to_image_tensor
from anomalia.data.photo import PhotoStyle, render_photo_like, write_photo_like
from anomalia.data.protocol import Split, make_split
from anomalia.data.registry import available_datasets, get_dataset_spec, load_dataset
from anomalia.data.sampler import BalancedBatchSampler
from anomalia.data.synthetic import write_defect_dataset
from anomalia.data.types import DatasetSpec, ImageData

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_MODES",
    "BalancedBatchSampler",
    "DatasetSpec",
    "ImageData",
    "MaskMode",
    "PhotoStyle",
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
    "load_mask",
    "load_mvtec",
    "load_normal_anomaly",
    "make_split",
    "read_idx",
    "render_photo_like",
    "to_image_tensor",
    "write_defect_dataset",
    "write_idx",
    "write_photo_like",
]
