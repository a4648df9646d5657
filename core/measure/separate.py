"""Cut a nodule off what touches it (vessels; the wall is cut by ``core.measure.lungs``) by erosion
and reconstruction.

The dense region grown from the marker holds the nodule and whatever touches it. Eroding it by a
growing ball (radius rho, mm) leaves, once rho passes the width of a vessel's neck, the nodule's core
as a part of its own that stays inside the marker's reach, while vessels run on out of it. The nodule
is that core dilated back by rho inside the dense region (a reconstruction): attachments thinner than
the ball do not come back. Erosion and dilation are Euclidean distance thresholds in mm (one distance
transform each), so slices of any thickness are treated alike. The idea is that of Kuhnigk et al.
(IEEE TMI 2006), written from its description. A vessel thicker than the nodule cannot be cut this
way; the reach then bounds the mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_CONNECT = ndimage.generate_binary_structure(3, 1)


def separate(
    dense: np.ndarray,
    seed: tuple[int, int, int],
    spacing_zyx: np.ndarray,
    core: np.ndarray,
    reach: np.ndarray,
) -> np.ndarray:
    """The nodule part of ``dense`` (bool box) that holds ``seed``. The erosion follows the deepest
    voxel within ``core`` (bool box, near the marker's centre); ``reach`` (bool box) is where the
    nodule may lie: what stays joined beyond it is something else. Empty when ``seed`` is not dense."""
    labels, _ = ndimage.label(dense, _CONNECT)
    if not labels[seed]:
        return np.zeros_like(dense)
    part = labels == labels[seed]
    if not (part & ~reach).any():
        return part
    depth = ndimage.distance_transform_edt(part, sampling=spacing_zyx)
    top = np.unravel_index(np.argmax(np.where(core & part, depth, -1.0)), depth.shape)
    step = float(spacing_zyx.min()) / 2
    rho, limit = step, 0.8 * float(depth[top])  # never erode the nodule's own core away
    while True:
        labels, _ = ndimage.label(depth > rho, _CONNECT)
        kernel = labels == labels[top]
        if not (kernel & ~reach).any() or rho + step > limit:
            break
        rho += step
    back = ndimage.distance_transform_edt(~kernel, sampling=spacing_zyx) <= rho + step
    labels, _ = ndimage.label(part & back & reach, _CONNECT)
    return labels == labels[top]
