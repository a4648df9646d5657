"""measure_markers: saved masks while they fit, segmentation otherwise, a reason for each failure."""

import numpy as np

from core.measure.markers import measure_markers
from core.measure.mask import NoduleMask
from core.nodule.markers import NoduleMarker
from core.volume import CTVolume


def _volume():
    hu = np.full((40, 60, 60), -850, dtype=np.int16)
    z, y, x = np.indices(hu.shape)
    hu[(z - 20) ** 2 + (y - 30) ** 2 + (x - 30) ** 2 <= 36] = 40  # a 13-voxel solid sphere (1 mm voxels)
    return CTVolume(hu, np.eye(4))


def test_each_marker_is_measured_or_says_why_not():
    volume = _volume()
    markers = [
        NoduleMarker("good", "N1", (30.0, 30.0, 20.0), 12.0),
        NoduleMarker("air", "N2", (10.0, 10.0, 10.0), 6.0),
        NoduleMarker("out", "N3", (500.0, 30.0, 20.0), 6.0),
    ]
    done = measure_markers(volume, markers)
    assert set(done.measurements) == set(done.masks) == {"good"}
    assert abs(done.measurements["good"].long_axis_mm - 13.0) <= 1.0  # whichever segmenter is in use
    assert "outside the series" in done.errors["out"]
    assert done.errors["air"] and "\n" not in done.errors["air"]  # the segmenter's one-line reason


def test_a_fitting_saved_mask_is_used_and_a_stale_one_replaced():
    volume = _volume()
    marker = NoduleMarker("good", "N1", (30.0, 30.0, 20.0), 12.0)
    tiny = np.ones((1, 2, 3), dtype=bool)
    fitting = NoduleMask((20, 30, 30), tiny, "edited", marker.centre_mm, 12.0, edited=True)
    stale = NoduleMask((20, 30, 30), tiny, "classical/x", (0.0, 0.0, 0.0), 12.0)
    used = measure_markers(volume, [marker], {"good": fitting})
    assert used.masks["good"] is fitting and used.measurements["good"].edited
    assert used.measurements["good"].volume_mm3 == 6.0
    redone = measure_markers(volume, [marker], {"good": stale})
    assert redone.masks["good"] is not stale and redone.measurements["good"].volume_mm3 > 6.0


def test_a_saved_mask_outside_the_volume_is_an_error_not_a_crash():
    volume = _volume()
    marker = NoduleMarker("m", "N1", (30.0, 30.0, 20.0), 12.0)
    outside = NoduleMask((100, 0, 0), np.ones((2, 2, 2), bool), "edited", marker.centre_mm, 12.0, edited=True)
    done = measure_markers(volume, [marker], {"m": outside})
    assert done.measurements == {} and "no voxel inside the volume" in done.errors["m"]
