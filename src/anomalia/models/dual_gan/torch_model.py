"""Generator of the two-discriminator GAN (Kim et al., ECCV 2020 Workshops): a small U-Net."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from anomalia.models.common import AnomalyMap, ScoringModel
from anomalia.models.discriminator import init_pix2pix_weights


def work_size_for(image_size: int) -> int:
    """The power of two (at least 16) images are resized to: 28 -> 32."""
    return max(16, 2 ** math.ceil(math.log2(image_size)))


def _down(c_in: int, c_out: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class UNetGenerator(nn.Module):
    """Encoder-decoder with skips at the three inner scales; works on [-1, 1] images.

    Four stride-2 convolutions (kernel 4, widths w, 2w, 4w, 8w; LeakyReLU 0.2; batch norm except
    the first) down to the bottleneck, four transposed convolutions back up (ReLU; batch norm
    except the last, which ends in Tanh). Weights start N(0, 0.02) as in pix2pix.
    """

    def __init__(self, in_channels: int, base_width: int = 64) -> None:
        super().__init__()
        w = base_width
        self.down1 = _down(in_channels, w, norm=False)
        self.down2 = _down(w, 2 * w, norm=True)
        self.down3 = _down(2 * w, 4 * w, norm=True)
        self.down4 = _down(4 * w, 8 * w, norm=True)
        self.up1 = _up(8 * w, 4 * w)
        self.up2 = _up(8 * w, 2 * w)  # input: up1 output + down3 skip
        self.up3 = _up(4 * w, w)  # input: up2 output + down2 skip
        self.up4 = nn.Sequential(  # input: up3 output + down1 skip
            nn.ConvTranspose2d(2 * w, in_channels, 4, stride=2, padding=1), nn.Tanh()
        )
        init_pix2pix_weights(self)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Bottleneck features (B, 8w, S/16, S/16), used by the latent loss."""
        return self.down4(self.down3(self.down2(self.down1(x))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction (B, C, S, S) in [-1, 1], bottleneck of ``x``)."""
        d1 = self.down1(x)  # (B, w, S/2, S/2)
        d2 = self.down2(d1)  # (B, 2w, S/4, S/4)
        d3 = self.down3(d2)  # (B, 4w, S/8, S/8)
        z = self.down4(d3)  # (B, 8w, S/16, S/16)
        u = self.up1(z)
        u = self.up2(torch.cat([u, d3], dim=1))
        u = self.up3(torch.cat([u, d2], dim=1))
        return self.up4(torch.cat([u, d1], dim=1)), z


class DualGanGenerator(ScoringModel):
    """The scoring model: resizes [0, 1] images to a power of two in [-1, 1], reconstructs them.

    Args:
        in_channels: image channels (from the data).
        image_size: side of the input images (from the data).
        base_width: U-Net width (the paper's is 64).
        map_sigma: smoothing of the anomaly map (pixels of the input size).
        image_score: ``"mean"`` (the mean L1 error) or ``"map_max"`` (the map's maximum).
    """

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        base_width: int = 64,
        map_sigma: float = 2.0,
        image_score: str = "mean",
    ) -> None:
        super().__init__()
        self.anomaly_map = AnomalyMap(map_sigma, image_score)
        self.image_size = image_size
        self.work_size = work_size_for(image_size)
        self.unet = UNetGenerator(in_channels, base_width)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """[0, 1] images (B, C, H, W) -> [-1, 1] images (B, C, S, S) at the working size."""
        if x.shape[-1] != self.work_size:
            x = F.interpolate(
                x, size=(self.work_size, self.work_size), mode="bilinear", align_corners=False
            )
        return x * 2 - 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruct already-prepared images: (reconstruction, bottleneck)."""
        return self.unet(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """Anomaly score (B,): mean L1 error between prepared image and reconstruction (or the
        map's maximum, see ``image_score``)."""
        if self.anomaly_map.image_score != "mean":
            return self.score_and_map(x)[0]
        prepared = self.prepare(x)
        recon, _ = self.unet(prepared)
        return (prepared - recon).abs().flatten(1).mean(dim=1)

    def score_and_map(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and maps: the L1 error per pixel at the working size, averaged over
        channels, resized to the input and smoothed."""
        prepared = self.prepare(x)
        recon, _ = self.unet(prepared)
        per_pixel = (prepared - recon).abs()  # (B, C, S, S)
        error_map = per_pixel.mean(dim=1, keepdim=True)
        if error_map.shape[-1] != self.image_size:
            size = (self.image_size, self.image_size)
            error_map = F.interpolate(error_map, size=size, mode="bilinear", align_corners=False)
        maps = self.anomaly_map(error_map)
        return self.anomaly_map.score(per_pixel.flatten(1).mean(dim=1), maps), maps

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstructions in the input's [0, 1] scale and size (for plots)."""
        recon, _ = self.unet(self.prepare(x))
        recon = (recon + 1) / 2
        if recon.shape[-1] != self.image_size:
            recon = F.interpolate(
                recon, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False
            )
        return recon
