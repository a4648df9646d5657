"""MTMR-Net's loss: cross-entropy + margin ranking + attribute MSE (weights 0.4 / 0.2 / 0.4).

Where this deviates from the authors' code, and why:

* Ranking score. The authors rank each of the two class scores separately and add both; we rank one
  score, the malignant-vs-benign log-odds ``logit[1] - logit[0]``: it is what the ranked list shows,
  and it cannot be satisfied by shifting both logits together.
* Ranking normalisation. The authors divide by B/2 even when pairs with equal labels were skipped,
  so the term shrinks as batches get purer; we average over the valid pairs (zero if there are none).
* Indeterminate nodules (mean malignancy exactly 3, label -1) and unlabelled samples are left out of
  the cross-entropy and ranking terms but still train the attributes; missing attribute targets
  (NaN) are masked, so reader labels with only some attributes can be used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from models.mtmr import ATTRIBUTE_NAMES

IGNORE = -1


@dataclass(frozen=True)
class LossConfig:
    classification: float = 0.4
    ranking: float = 0.2
    attributes: float = 0.4
    margin: float = 0.1
    doubled: tuple[str, ...] = ("lobulation", "spiculation")  # counted twice, as in the paper


def ranking_loss(scores: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Siamese pairs (i, i + B/2): the more malignant member must score higher by ``margin``."""
    half = scores.shape[0] // 2
    first, second = scores[:half], scores[half : 2 * half]
    la, lb = labels[:half], labels[half : 2 * half]
    valid = (la != IGNORE) & (lb != IGNORE) & (la != lb)
    if not bool(valid.any()):
        return scores.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) intact
    target = torch.where(la > lb, 1.0, -1.0)[valid]
    return F.relu(margin - target * (first[valid] - second[valid])).mean()


def attribute_loss(predicted: torch.Tensor, target: torch.Tensor, doubled: tuple[str, ...]) -> torch.Tensor:
    """Per-attribute MSE on the 0..1 scale, summed over attributes; NaN targets are masked."""
    weights = torch.tensor(
        [2.0 if name in doubled else 1.0 for name in ATTRIBUTE_NAMES], device=predicted.device
    )
    known = ~torch.isnan(target)
    if not bool(known.any()):
        return predicted.sum() * 0.0
    error = torch.where(known, (predicted - torch.nan_to_num(target)) ** 2, torch.zeros_like(predicted))
    per_attribute = error.sum(0) / known.sum(0).clamp(min=1)
    return (per_attribute * weights).sum()


def mtmr_loss(
    outputs: dict[str, torch.Tensor], labels: torch.Tensor, attributes: torch.Tensor, config: LossConfig
) -> dict[str, torch.Tensor]:
    """The weighted total and its parts (unweighted), for logging."""
    logits = outputs["logits"]
    labelled = labels != IGNORE
    ce = F.cross_entropy(logits[labelled], labels[labelled]) if bool(labelled.any()) else logits.sum() * 0.0
    rank = ranking_loss(logits[:, 1] - logits[:, 0], labels, config.margin)
    attr = attribute_loss(outputs["attributes"], attributes, config.doubled)
    total = config.classification * ce + config.ranking * rank + config.attributes * attr
    return {"total": total, "classification": ce, "ranking": rank, "attributes": attr}
