"""Data layer: readers, the experiment protocol and samplers. Knows nothing about models.

The torch-based parts (the dataset wrapper, collation, the batch sampler) are imported on first
use, so reading and converting image files (:mod:`anomalia.data.image_files`, used by the ONNX
serving path) does not import torch.
"""

import importlib
from typing import TYPE_CHECKING, Any

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
from anomalia.data.photo import PhotoStyle, render_photo_like, write_photo_like
from anomalia.data.protocol import Split, make_split
from anomalia.data.registry import available_datasets, get_dataset_spec, load_dataset
from anomalia.data.synthetic import write_defect_dataset
from anomalia.data.types import DatasetSpec, ImageData

if TYPE_CHECKING:
    from anomalia.data.images import TensorImageDataset, collate_batch, to_image_tensor
    from anomalia.data.sampler import BalancedBatchSampler

_TORCH_PARTS = {
    "TensorImageDataset": "anomalia.data.images",
    "collate_batch": "anomalia.data.images",
    "to_image_tensor": "anomalia.data.images",
    "BalancedBatchSampler": "anomalia.data.sampler",
}


def __getattr__(name: str) -> Any:
    if name in _TORCH_PARTS:
        return getattr(importlib.import_module(_TORCH_PARTS[name]), name)
    raise AttributeError(f"module 'anomalia.data' has no attribute {name!r}")


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
