"""MTMR-Net (Liu et al., DLMIA 2018; IEEE TMI 2020): a ResNet trunk, an attribute branch, and a
malignancy branch on trunk + attribute features. Siamese pairs share every weight, so one module
serves both members of a pair; the pairing happens in the loss.

One addition to the authors' design, on by default in ``compact`` and off in ``paper``: the reader's
marker diameter (always known when a nodule is marked; what Lung-RADS grades by) joins the
malignancy branch as two scalar features. Size is the strongest single malignancy cue in LIDC
(AUC 0.86 alone) and a 2D patch shows it only indirectly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

ATTRIBUTE_NAMES = (
    "subtlety", "internal_structure", "calcification", "sphericity", "margin",
    "lobulation", "spiculation", "texture",
)  # fmt: skip


@dataclass(frozen=True)
class MTMRNetConfig:
    """Architecture only; preprocessing lives with the patch extractor and is stored beside it."""

    depth: int = 18
    width: int = 32
    input_size: int = 64
    in_channels: int = 1
    attribute_dim: int = 256
    dropout: float = 0.5
    stem_stride: int = 2
    size_input: bool = True  # the marker's diameter joins the malignancy branch (not in the paper)

    @classmethod
    def paper(cls) -> MTMRNetConfig:
        """The authors' configuration: ResNet-50, 224 px, grey copied to 3 channels."""
        return cls(depth=50, width=64, input_size=224, in_channels=3, stem_stride=4, size_input=False)

    @classmethod
    def compact(cls) -> MTMRNetConfig:
        """Fast enough to train and fine-tune on a 2-core CPU: ResNet-18 at width 32, 64 px, stride-2 stem."""
        return cls()

    def to_dict(self) -> dict:
        return asdict(self)


class MTMRNet(nn.Module):
    def __init__(self, config: MTMRNetConfig | None = None) -> None:
        super().__init__()
        from models.resnet import ResNet

        self.config = config or MTMRNetConfig.compact()
        c = self.config
        self.trunk = ResNet(c.depth, c.width, c.in_channels, stem_stride=c.stem_stride)
        features = self.trunk.feature_dim
        self.attribute_fc = nn.Sequential(nn.Linear(features, c.attribute_dim), nn.ReLU(inplace=True))
        self.attribute_heads = nn.ModuleList(nn.Linear(c.attribute_dim, 1) for _ in ATTRIBUTE_NAMES)
        self.dropout = nn.Dropout(c.dropout)
        self.classifier = nn.Linear(features + c.attribute_dim + (SIZE_FEATURES if c.size_input else 0), 2)

    def head_parameters(self) -> list[nn.Parameter]:
        """Everything but the trunk: the paper trains these at 100x the trunk's learning rate."""
        trunk = {id(p) for p in self.trunk.parameters()}
        return [p for p in self.parameters() if id(p) not in trunk]

    def heads(
        self, features: torch.Tensor, diameter_mm: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        attribute_features = self.attribute_fc(features)
        attributes = torch.cat([torch.sigmoid(head(attribute_features)) for head in self.attribute_heads], 1)
        parts = [features, attribute_features]
        if self.config.size_input:
            parts.append(size_features(diameter_mm, features))
        logits = self.classifier(self.dropout(torch.cat(parts, 1)))
        return {
            "features": features,
            "attribute_features": attribute_features,
            "attributes": attributes,  # (B, 8) in 0..1: (rating - 1) / (max - 1)
            "logits": logits,  # (B, 2): benign, malignant
            "malignancy": torch.softmax(logits, 1)[:, 1],
        }

    def forward(self, x: torch.Tensor, diameter_mm: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``diameter_mm`` (B,): the reader's marker diameter, used when ``config.size_input``."""
        return self.heads(self.trunk(x), diameter_mm)


SIZE_FEATURES = 2


def size_features(diameter_mm: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """log2(d / 10 mm) and (d / 10 mm): scale-free size cues; a missing diameter reads as 10 mm."""
    if diameter_mm is None:
        return torch.zeros(like.shape[0], SIZE_FEATURES, dtype=like.dtype, device=like.device)
    d = diameter_mm.to(like.dtype).clamp(min=1.0).reshape(-1, 1) / 10.0
    return torch.cat([torch.log2(d), d - 1.0], 1)
