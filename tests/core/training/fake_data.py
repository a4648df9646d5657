"""A tiny, learnable NoduleDataset: malignant nodules are big bright disks, benign ones small."""

from __future__ import annotations

import numpy as np

from core.training.data import NoduleDataset


def fake_dataset(nodules: int = 24, slices: int = 3, size: int = 32, seed: int = 0) -> NoduleDataset:
    rng = np.random.default_rng(seed)
    labels = np.array([i % 2 for i in range(nodules)], np.int8)
    labels[-1] = -1  # one indeterminate nodule: attributes only
    yy, xx = np.mgrid[:size, :size] - size / 2
    patches, index = [], []
    for n, label in enumerate(labels):
        radius = 9 if label == 1 else 4
        for _ in range(slices):
            image = np.where(np.hypot(yy, xx) < radius + rng.normal(0, 0.5), 0.5, -0.8)
            patches.append(image + rng.normal(0, 0.05, image.shape))
            index.append(n)
    attributes = np.full((nodules, 8), 0.5, np.float32)
    attributes[:, 6] = labels.clip(0, 1) * 0.8  # spiculation follows the label here
    return NoduleDataset(
        patches=np.array(patches, np.float16)[:, None],
        nodule_index=np.array(index, np.int32),
        variant=np.zeros(len(index), np.int16),
        labels=labels,
        attributes=attributes,
        diameters=np.where(labels == 1, 18.0, 8.0).astype(np.float32),
        nodule_ids=np.array([f"LIDC-IDRI-{n + 1:04d}/scan-1/nodule-1" for n in range(nodules)]),
        patient_ids=np.array([f"LIDC-IDRI-{n + 1:04d}" for n in range(nodules)]),
    )
