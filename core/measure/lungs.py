"""The lung field around a marker, closed so that a nodule on the pleura lies inside it.

Lung is what is clearly less dense than soft tissue; a nodule attached to the chest wall or the
mediastinum is a bump of tissue into it. A morphological closing of the lung with a ball larger than
the nodule fills the bump (no ball that large fits through the nodule's neck onto the wall), while the
wall and the mediastinum, wider than the ball, stay outside: the nodule's mask is then cut at the
pleural surface. Closing and ball are done as Euclidean distance thresholds in mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

WALL_HU = 30.0  # chest wall and mediastinum soft tissue


def lung_field(box: np.ndarray, background_hu: float, spacing_zyx: np.ndarray, ball_mm: float) -> np.ndarray:
    """Bool box: the lung (parenchyma level ``background_hu``) closed with a ball of ``ball_mm``."""
    lung = box < 0.5 * (background_hu + WALL_HU)
    if lung.all():
        return lung
    grown = ndimage.distance_transform_edt(~lung, sampling=spacing_zyx) <= ball_mm
    return ndimage.distance_transform_edt(grown, sampling=spacing_zyx) > ball_mm
