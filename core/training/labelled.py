"""Training data from a reader's labelled markers: the patches the Predictor sees, with the reader's label.

Each labelled marker is cut from its study's volume with ``core.model.patches.extract_patches`` and the
model's own ``PatchConfig``, exactly as ``core.model.inference.Predictor`` does at inference (no jitter):
variant 0. Optional jittered copies (variants 1..n, a seeded rng) are the augmentation.

Labels follow the paper: malignancy rating > 3 malignant (1), < 3 benign (0); exactly 3 or no rating
is -1, left out of classification and ranking. Attributes are put on the 0..1 scale; a rating the
reader did not give is NaN, which the attribute loss masks value by value (``models.losses``), so it
trains nothing. ``patient_ids`` hold the series UID (or the ``patient_id`` given), so validation can be
split by study; ``concatenate`` mixes many studies and the phantom train split into one dataset.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.model.patches import Jitter, PatchConfig, extract_patches
from core.nodule.labels import LabelledNodule
from core.nodule.ratings import ATTRIBUTES, to_unit_scale
from core.training.data import LABELS, NoduleDataset
from core.volume import CTVolume


def label_value(nodule: LabelledNodule) -> int:
    """1 malignant, 0 benign, -1 indeterminate (exactly 3) or not rated."""
    classification = nodule.label.classification
    return -1 if classification is None else LABELS[classification]


def attribute_targets(nodule: LabelledNodule) -> np.ndarray:
    """The eight attributes on the 0..1 scale (``ATTRIBUTES`` order); NaN where not rated."""
    ratings = np.array([nodule.label.attributes.get(name, np.nan) for name in ATTRIBUTES], np.float64)
    return to_unit_scale(ratings).astype(np.float32)


def dataset_from_labels(
    volume: CTVolume,
    nodules: Sequence[LabelledNodule],
    patch: PatchConfig,
    patient_id: str = "",
    variants: int = 0,
    seed: int = 0,
) -> NoduleDataset:
    """The labelled markers of one study as a ``NoduleDataset``.

    ``patient_id`` (a pseudonym, never a real patient ID) groups the nodules for a split by study;
    when empty, each nodule's series UID is used, else the volume's. Raises ``ValueError`` naming the
    marker when a marker lies outside the volume or was read on another series.
    """
    if variants < 0:
        raise ValueError(f"variants must be >= 0, not {variants}")
    volume_series = volume.metadata.series_uid
    rng = np.random.default_rng([seed, 17])
    patches, index, variant = [], [], []
    for n, nodule in enumerate(nodules):
        if nodule.series_uid and volume_series and nodule.series_uid != volume_series:
            raise ValueError(
                f"marker {nodule.marker_id}: it was read on series {nodule.series_uid}, "
                f"not on this volume's series {volume_series}"
            )
        jitters = [None] + [Jitter.random(rng) for _ in range(variants)]
        for v, jitter in enumerate(jitters):
            try:
                stack = extract_patches(volume, nodule.centre_mm, nodule.diameter_mm, patch, jitter)
            except ValueError as exc:
                raise ValueError(f"marker {nodule.marker_id}: {exc}") from exc
            patches.append(stack.astype(np.float16))
            index += [n] * len(stack)
            variant += [v] * len(stack)
    groups = [patient_id or nodule.series_uid or volume_series for nodule in nodules]
    return NoduleDataset(
        patches=np.concatenate(patches)
        if patches
        else np.zeros((0, patch.channels, patch.size, patch.size), np.float16),
        nodule_index=np.array(index, np.int32),
        variant=np.array(variant, np.int16),
        labels=np.array([label_value(n) for n in nodules], np.int8),
        attributes=np.array([attribute_targets(n) for n in nodules], np.float32).reshape(-1, len(ATTRIBUTES)),
        diameters=np.array([n.diameter_mm for n in nodules], np.float32),
        nodule_ids=np.array(
            [f"{g}/{n.marker_id}" if g else n.marker_id for g, n in zip(groups, nodules, strict=True)],
            dtype=str,
        ),
        patient_ids=np.array(groups, dtype=str),
    )


def concatenate(datasets: Sequence[NoduleDataset]) -> NoduleDataset:
    """One dataset of several (studies, the phantom split...): ``nodule_index`` offset per part."""
    if not datasets:
        raise ValueError("nothing to concatenate")
    shapes = {d.patches.shape[1:] for d in datasets if len(d.patches)}
    if len(shapes) > 1:
        raise ValueError(f"datasets cut with different patch shapes cannot be mixed: {sorted(shapes)}")
    offsets = np.cumsum([0] + [len(d.labels) for d in datasets[:-1]])
    patches = [d.patches for d in datasets if len(d.patches)] or [datasets[0].patches]
    table_offsets = np.cumsum([0] + [len(d.protocols) for d in datasets[:-1]])
    return NoduleDataset(
        patches=np.concatenate(patches).astype(np.float16, copy=False),
        nodule_index=np.concatenate(
            [d.nodule_index.astype(np.int64) + o for d, o in zip(datasets, offsets, strict=True)]
        ).astype(np.int32),
        variant=np.concatenate([d.variant for d in datasets]).astype(np.int16),
        labels=np.concatenate([d.labels for d in datasets]).astype(np.int8),
        attributes=np.concatenate([d.attributes for d in datasets]).astype(np.float32),
        diameters=np.concatenate([d.diameters for d in datasets]).astype(np.float32),
        nodule_ids=np.concatenate([d.nodule_ids.astype(str) for d in datasets]),
        patient_ids=np.concatenate([d.patient_ids.astype(str) for d in datasets]),
        protocols=np.concatenate([d.protocols.astype(str) for d in datasets]),
        protocol_index=np.concatenate(
            [d.protocol_index.astype(np.int64) + o for d, o in zip(datasets, table_offsets, strict=True)]
        ).astype(np.int16),
    )
