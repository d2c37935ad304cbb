"""The self-supervised detector's networks: a small convolutional encoder and the linear head
that names an image's quarter turn from the encoder's features; both score."""

from __future__ import annotations

from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from anomalia.models.knn.torch_model import FeatureBankScorer, KnnScorer

SelfSupervisedScore = Literal["rotation", "neighbours", "fused"]


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, 4 * width): four conv blocks (the first three halve the side), then
    a global average pool, so the features do not depend on where in the image a shape is.
    Halving from the first block keeps a training step cheap enough for a CPU."""

    def __init__(self, in_channels: int, width: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            _block(in_channels, width, 2),
            _block(width, 2 * width, 2),
            _block(2 * width, 4 * width, 2),
            _block(4 * width, 4 * width, 1),
        )
        self.out_dim = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.net(x).mean(dim=(2, 3))  # (B, 4 * width)
        # Scoring is nearly all convolution: run it on channels-last tensors, which oneDNN
        # computes faster, with each batch norm folded into its convolution (docs/benchmarks.md).
        # The same numbers to float rounding; training keeps the plain modules, so seeded
        # training gives the weights it always gave.
        h = x.contiguous(memory_format=torch.channels_last)
        for block in cast(list[nn.Sequential], self.net):
            conv, norm = cast(nn.Conv2d, block[0]), cast(nn.BatchNorm2d, block[1])
            assert norm.running_mean is not None and norm.running_var is not None
            scale = norm.weight * torch.rsqrt(norm.running_var + norm.eps)  # (C_out,)
            bias = norm.bias - norm.running_mean * scale  # (the convolution has none)
            weight = conv.weight * scale[:, None, None, None]
            h = F.relu(F.conv2d(h, weight, bias, conv.stride, conv.padding))
        return h.mean(dim=(2, 3))  # (B, 4 * width)


def quarter_turn(x: torch.Tensor, quarters: int) -> torch.Tensor:
    """Square images (B, C, S, S) turned counter-clockwise by ``quarters`` x 90 degrees, as
    ``torch.rot90(x, quarters, (2, 3))`` does, built from a transpose and flips because ONNX
    has no rot90."""
    quarters %= 4
    if quarters == 1:
        return x.transpose(2, 3).flip(2)
    if quarters == 2:
        return x.flip((2, 3))
    if quarters == 3:
        return x.transpose(2, 3).flip(3)
    return x


def rotate_quarters(x: torch.Tensor, quarters: torch.Tensor) -> torch.Tensor:
    """Each square image x[i] (B, C, S, S) turned counter-clockwise by ``quarters[i]`` (B,)
    times 90 degrees."""
    out = x.clone()
    for q in range(1, 4):
        chosen = quarters == q
        if chosen.any():
            out[chosen] = quarter_turn(x[chosen], q)
    return out


class SelfSupervisedScorer(FeatureBankScorer):
    """Scores an image by how badly the network tells which way up it is, or by its nearest
    normal neighbours in the encoder's feature space.

    - ``score="rotation"`` (GEOM, Golan & El-Yaniv 2018): the image is turned by 0, 90, 180
      and 270 degrees, and the score is the mean negative log-probability the rotation head
      gives the right turn. A network trained on normal images names their turn confidently;
      an unfamiliar shape leaves it unsure.
    - ``score="neighbours"``: :class:`FeatureBankScorer`'s distance to the k nearest normal
      training images (unit-length features: cosine geometry) with its labelled-anomaly term.
    - ``score="fused"``: the rotation score plus ``pixels``' score (the ``knn`` detector in
      blurred pixel space, labelled-anomaly term included), each divided by its standard
      deviation over the normal training images (``fusion_scale``): what the network learned
      about shape, and what the pixels say about everything else.

    The feature banks are filled in every case (the cost is one pass over the training set)
    so that a saved detector always holds its training features; ``pixels`` exists only for
    ``fused``.

    Args:
        pixels: the pixel-space scorer of ``score="fused"`` (a :class:`KnnScorer` with knn's
            settings), None otherwise.
    """

    fusion_scale: torch.Tensor | None

    def __init__(
        self, in_channels: int, image_size: int, width: int = 32, k: int = 3,
        anomaly_weight: float = 0.5, score: SelfSupervisedScore = "rotation",
        pixels: KnnScorer | None = None,
    ) -> None:  # fmt: skip
        if (score == "fused") != (pixels is not None):
            raise ValueError("a pixel scorer is needed for, and only for, score='fused'")
        encoder = ConvEncoder(in_channels, width)
        super().__init__(encoder.out_dim, k, anomaly_weight)
        self.score_kind = score
        self.encoder = encoder
        self.rotation_head = nn.Linear(encoder.out_dim, 4)
        self.pixels = pixels
        # (rotation, pixels); None (not saved) unless fused, so detectors saved before
        # ``fused`` existed still load.
        self.register_buffer("fusion_scale", None if pixels is None else torch.ones(2))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> unit-length features (B, 4 * width)."""
        return F.normalize(self.encoder(x.float()), dim=1)

    def rotation_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The rotation head's logits (B, 4) for images (B, C, H, W)."""
        return self.rotation_head(self.encoder(x.float()))

    def rotation_score(self, x: torch.Tensor) -> torch.Tensor:
        """Mean over the four quarter turns of -log p(turn | turned image), shape (B,)."""
        terms = [
            F.log_softmax(self.rotation_logits(quarter_turn(x, q)), dim=1)[:, q] for q in range(4)
        ]  # (no zeros of the batch's length to add to: ONNX would fix the batch size)
        return -torch.stack(terms, dim=1).mean(dim=1)

    def set_fusion_scale(self, rotation: torch.Tensor, pixels: torch.Tensor | None) -> None:
        """Store the spreads of the two scores (B,) of normal training images for ``fused``
        (the pixel scores each leaving its own image out); ``pixels`` None keeps the stored
        pixel spread."""
        assert self.fusion_scale is not None  # (fused only)
        spreads = [rotation.std(), self.fusion_scale[1] if pixels is None else pixels.std()]
        self.fusion_scale = torch.stack(spreads).clamp_min(1e-12).detach()  # no division by 0

    def score(self, x: torch.Tensor, exclude_self: bool = False) -> torch.Tensor:
        """Anomaly score (B,), higher = more anomalous (``exclude_self``: see
        :meth:`FeatureBankScorer.score`; the rotation score needs no such care)."""
        if self.score_kind == "rotation":
            return self.rotation_score(x)
        if self.score_kind == "fused":
            assert self.pixels is not None and self.fusion_scale is not None  # (__init__)
            pixel_score = self.pixels.score(x, exclude_self)
            return (
                self.rotation_score(x) / self.fusion_scale[0] + pixel_score / self.fusion_scale[1]
            )
        return super().score(x, exclude_self)
