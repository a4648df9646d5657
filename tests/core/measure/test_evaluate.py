import numpy as np
import pytest

from core.measure.evaluate import agreement
from core.measure.mask import NoduleMask


def test_dice_and_volume_error_of_shifted_boxes():
    cube = np.ones((2, 2, 2), dtype=bool)
    truth = NoduleMask((0, 0, 0), cube, "truth")
    same = agreement(truth, NoduleMask((0, 0, 0), cube, "m"))
    assert same.dice == 1.0 and same.volume_error == 0.0
    half = agreement(truth, NoduleMask((0, 0, 1), cube, "m"))  # overlaps 4 of 8 voxels
    assert half.dice == pytest.approx(0.5) and half.volume_error == 0.0
    bigger = agreement(truth, NoduleMask((0, 0, 0), np.ones((2, 2, 4), dtype=bool), "m"))
    assert bigger.volume_error == pytest.approx(1.0) and bigger.dice == pytest.approx(16 / 24)


def test_an_empty_reference_is_refused():
    with pytest.raises(ValueError, match="empty"):
        agreement(
            NoduleMask((0, 0, 0), np.zeros((1, 1, 1), bool), "t"),
            NoduleMask((0, 0, 0), np.ones((1, 1, 1), bool), "m"),
        )
