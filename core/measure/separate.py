"""Cut a nodule off what touches it (vessels, chest wall, mediastinum) at the narrowest neck between them.

The dense region grown from the marker holds the nodule and whatever touches it. Its depth (Euclidean
distance to the nearest non-dense voxel, in mm, so slices of any thickness are treated alike) has a
ridge along every vessel and a plateau in the wall, and a hill in the nodule; where a nodule touches
them the depth drops at the neck. A marker-based watershed of the depth, flooded from the nodule's
core and from everything dense beyond the marker's reach, splits the region along those necks; the
nodule is the part flooded from its core. An isolated nodule (nothing dense beyond the reach) is its
whole connected region.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_CONNECT = ndimage.generate_binary_structure(3, 1)
NODULE, OTHER, OUTSIDE = 1, 2, -1


def separate(
    dense: np.ndarray,
    seed: tuple[int, int, int],
    spacing_zyx: np.ndarray,
    core: np.ndarray,
    reach: np.ndarray,
) -> np.ndarray:
    """The nodule part of ``dense`` (bool box) that holds ``seed``; its summit is the deepest voxel
    within ``core`` (bool box, near the marker's centre); ``reach`` (bool box) is where the nodule may
    lie: dense voxels outside it belong to something else. Empty when ``seed`` is not dense."""
    labels, _ = ndimage.label(dense, _CONNECT)
    if not labels[seed]:
        return np.zeros_like(dense)
    part = labels == labels[seed]
    if not (part & ~reach).any():
        return part
    depth = ndimage.distance_transform_edt(part, sampling=spacing_zyx)
    top = np.unravel_index(np.argmax(np.where(core & part, depth, -1.0)), depth.shape)
    step = float(spacing_zyx.min()) / 2
    rho, limit = step, 0.8 * float(depth[top])
    while True:
        labels, _ = ndimage.label(depth > rho, _CONNECT)
        kernel = labels == labels[top]
        if not (kernel & ~reach).any() or rho + step > limit:
            break
        rho += step
    back = ndimage.distance_transform_edt(~kernel, sampling=spacing_zyx) <= rho + step
    labels, _ = ndimage.label(part & back & reach, _CONNECT)
    return labels == labels[top]
