"""The self-supervised detector's networks: a small convolutional encoder and the linear head
that names an image's quarter turn from the encoder's features; both score."""

from __future__ import annotations

from typing import Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from anomalia.models.knn.torch_model import FeatureBankScorer, KnnScorer

SelfSupervisedScore = Literal["rotation", "neighbours", "fused"]


def _block(c_in: int, c_out: int, stride: int, groups: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False, groups=groups),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, members * 4 * width): four conv blocks (the first three halve the
    side), then a global average pool, so the features do not depend on where in the image a
    shape is. Halving from the first block keeps a training step cheap enough for a CPU.

    ``members`` > 1 makes it that many independent encoders, each from its own initial weights,
    run as one network of grouped convolutions (member m owns the m-th slice of every layer's
    channels; its features are the m-th ``out_dim`` slice of the output): one pass for the
    whole ensemble, and with one member exactly the plain encoder."""

    def __init__(self, in_channels: int, width: int = 32, members: int = 1) -> None:
        super().__init__()
        m = members
        self.net = nn.Sequential(
            _block(m * in_channels, m * width, 2, m),
            _block(m * width, m * 2 * width, 2, m),
            _block(m * 2 * width, m * 4 * width, 2, m),
            _block(m * 4 * width, m * 4 * width, 1, m),
        )
        self.members = members
        self.out_dim = 4 * width  # per member

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.members > 1:
            x = x.repeat(1, self.members, 1, 1)  # each member's group sees the whole image
        if self.training:
            return self.net(x).mean(dim=(2, 3))  # (B, members * 4 * width)
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
            h = F.relu(F.conv2d(h, weight, bias, conv.stride, conv.padding, 1, conv.groups))
        return h.mean(dim=(2, 3))  # (B, members * 4 * width)


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


class GroupedLinear(nn.Linear):
    """``members`` independent linear maps, in_features -> out_features each, as one layer:
    (B, members * in_features) -> (B, members, out_features). Member m maps the m-th slice of
    the input with the m-th block of out_features rows of ``weight``; with one member exactly an
    ``nn.Linear`` (the same parameters, initial values and state-dict keys)."""

    def __init__(self, in_features: int, out_features: int, members: int = 1) -> None:
        super().__init__(in_features, members * out_features)
        self.members = members

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.members
        if m == 1:
            return super().forward(x)[:, None]
        w = self.weight.view(m, -1, self.in_features)  # (m, out, in)
        y = torch.einsum("bmi,moi->bmo", x.unflatten(1, (m, self.in_features)), w)
        return y + self.bias.view(m, -1)


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

    With ``members`` > 1 the scorer is an ensemble: that many encoders and rotation heads,
    trained side by side from their own initial weights (:class:`ConvEncoder`,
    :class:`GroupedLinear`). The rotation score is then the mean over members, and a
    feature row is the members' unit-length features side by side, scaled to unit length.

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
        pixels: KnnScorer | None = None, members: int = 1,
    ) -> None:  # fmt: skip
        if (score == "fused") != (pixels is not None):
            raise ValueError("a pixel scorer is needed for, and only for, score='fused'")
        encoder = ConvEncoder(in_channels, width, members)
        super().__init__(members * encoder.out_dim, k, anomaly_weight)
        self.score_kind = score
        self.members = members
        self.encoder = encoder
        self.rotation_head = GroupedLinear(encoder.out_dim, 4, members)
        self.pixels = pixels
        # (rotation, pixels); None (not saved) unless fused, so detectors saved before
        # ``fused`` existed still load.
        self.register_buffer("fusion_scale", None if pixels is None else torch.ones(2))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [0, 1] -> unit-length features (B, members * 4 * width)."""
        h = self.encoder(x.float())
        if self.members == 1:
            return F.normalize(h, dim=1)
        per_member = F.normalize(h.unflatten(1, (self.members, -1)), dim=2)
        return per_member.flatten(1) / self.members**0.5

    def rotation_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's rotation logits (B, members, 4) for images (B, C, H, W)."""
        return self.rotation_head(self.encoder(x.float()))

    def member_rotation_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Each member's mean over the four quarter turns of -log p(turn | turned image),
        shape (B, members)."""
        terms = [
            F.log_softmax(self.rotation_logits(quarter_turn(x, q)), dim=2)[:, :, q]
            for q in range(4)
        ]  # (B, members) each (no zeros of the batch's length to add to: ONNX would fix it)
        return -torch.stack(terms, dim=2).mean(dim=2)

    def rotation_score(self, x: torch.Tensor) -> torch.Tensor:
        """The members' mean of :meth:`member_rotation_scores`, shape (B,)."""
        return self.member_rotation_scores(x).mean(dim=1)

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
