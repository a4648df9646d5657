"""A small 3D U-Net that outlines one nodule in a patch cut around a reader's marker.

Input ``(B, 1, N, N, N)``: HU scaled by ``scale_hu`` (``core.measure.learned`` cuts and scales the
patch); output ``{"logits": (B, 1, N, N, N)}``, the nodule's log-odds per voxel. Two poolings, so
``N`` must be a multiple of 4. About 85k parameters at width 8 (a 0.35 MB float32 file).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Seg3DConfig:
    """Architecture only; how a patch is cut lives in ``core.measure.learned`` and the model card."""

    width: int = 8  # channels at full resolution; x2 at each of the two coarser levels
    in_channels: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Seg3DConfig:
        return cls(width=int(data["width"]), in_channels=int(data["in_channels"]))


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1, bias=False),
        nn.GroupNorm(4, cout),
        nn.ReLU(inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1, bias=False),
        nn.GroupNorm(4, cout),
        nn.ReLU(inplace=True),
    )


class Seg3DNet(nn.Module):
    """Encoder 3 levels (w, 2w, 4w), decoder with skip connections, a 1x1x1 head."""

    def __init__(self, config: Seg3DConfig | None = None) -> None:
        super().__init__()
        self.config = config or Seg3DConfig()
        w, cin = self.config.width, self.config.in_channels
        self.enc1, self.enc2, self.enc3 = _block(cin, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.pool = nn.MaxPool3d(2)
        self.up2 = nn.ConvTranspose3d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = _block(4 * w, 2 * w)
        self.up1 = nn.ConvTranspose3d(2 * w, w, 2, stride=2)
        self.dec1 = _block(2 * w, w)
        self.head = nn.Conv3d(w, 1, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        if x.ndim != 5 or x.shape[1] != self.config.in_channels or any(s % 4 for s in x.shape[2:]):
            raise ValueError(
                f"Seg3DNet takes (B, {self.config.in_channels}, N, N, N) with N a multiple of 4, "
                f"not {tuple(x.shape)}"
            )
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return {"logits": self.head(d1)}


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice (per patch, averaged): BCE gives every voxel a gradient,
    Dice keeps a small nodule from being drowned by its background."""
    bce = nn.functional.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits).flatten(1)
    flat = target.flatten(1)
    dice = (2 * (prob * flat).sum(1) + 1.0) / (prob.sum(1) + flat.sum(1) + 1.0)
    return bce + (1 - dice).mean()
