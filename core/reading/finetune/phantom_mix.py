"""The phantom train and validation splits cut with a model's preprocessing, and the mix of the
library's nodules with the phantom train split (so the model keeps what it knew)."""

from __future__ import annotations

from collections.abc import Callable

from core.model.patches import PatchConfig
from core.training.data import NoduleDataset

LIBRARY_SHARE = 0.1  # mixed with the phantom split, the reader's nodules make about this share


def phantom_train_data(
    patch: PatchConfig, progress: Callable[[int, int], None] | None = None, randomise: bool = False
) -> NoduleDataset:
    """The phantom train split cut with ``patch`` (one rendering per nodule; cached): clean with the
    nominal scan protocol, or with ``randomise`` each under a random one (``random_protocol``)."""
    from core.training.data import DatasetSpec, cached_dataset

    spec = DatasetSpec(split="train", seed=0, variants=0, patch=patch, randomise=randomise)
    return cached_dataset(spec, progress=progress)


def phantom_val_data(patch: PatchConfig, progress: Callable[[int, int], None] | None = None) -> NoduleDataset:
    """The phantom validation split cut with ``patch`` (one clean rendering per nodule; cached)."""
    from core.training.data import DatasetSpec, cached_dataset

    return cached_dataset(DatasetSpec(split="val", seed=0, variants=0, patch=patch), progress=progress)


def mix(library: NoduleDataset, phantoms: NoduleDataset) -> tuple[NoduleDataset, int]:
    """The library's nodules repeated so they weigh about ``LIBRARY_SHARE`` of a mix with the phantom
    train split (a handful of confirmed nodules would otherwise vanish among 1,780); and how often."""
    from core.training.labelled import concatenate

    repeats = max(1, round(LIBRARY_SHARE * len(phantoms.labels) / max(len(library.labels), 1)))
    return concatenate([*([library] * repeats), phantoms]), repeats
