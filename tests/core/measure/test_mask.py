"""NoduleMask: the box encoding survives the session's JSON, damage is refused with a reason."""

import json

import numpy as np
import pytest

from core.measure.mask import NoduleMask
from core.reading.session import Session


def _mask(edited=False):
    rng = np.random.default_rng(0)
    return NoduleMask((10, -2, 30), rng.random((5, 7, 9)) > 0.5, "classical/x", (1.0, 2.0, 3.0), 8.0, edited)


def test_a_mask_survives_json_bit_for_bit():
    mask = _mask(edited=True)
    back = NoduleMask.from_dict(json.loads(json.dumps(mask.to_dict())))
    assert np.array_equal(back.mask, mask.mask)
    assert back.origin_zyx == (10, -2, 30) and back.edited and back.method == "classical/x"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"bits": "AAAA"}, "damaged"),
        ({"shape_zyx": [5, 7]}, "not a 3D box"),
        ({"shape_zyx": [5, 7, 10]}, "do not fill"),
        ({"shape_zyx": [999, 999, 999]}, "too large"),
        ({"center_mm": [float("nan"), 0, 0]}, "not finite"),
        ({"origin_zyx": None}, "malformed"),
    ],
)
def test_a_damaged_saved_mask_is_refused_with_its_reason(change, reason):
    data = _mask().to_dict() | change
    with pytest.raises(ValueError, match=reason):
        NoduleMask.from_dict(data)


def test_clipping_and_cropping_keep_the_voxels_inside_the_volume():
    box = np.zeros((4, 4, 4), dtype=bool)
    box[0, 0, 0] = box[3, 3, 3] = True
    mask = NoduleMask((-1, 0, 0), box, "t")
    clipped = mask.clipped((10, 10, 10))
    assert clipped.origin_zyx == (0, 0, 0) and clipped.voxels == 1
    assert clipped.cropped().mask.shape == (1, 1, 1) and clipped.cropped().origin_zyx == (2, 3, 3)


def test_a_mask_wholly_outside_the_volume_clips_to_nothing():
    mask = NoduleMask((20, 0, 0), np.ones((2, 2, 2), dtype=bool), "t")
    clipped = mask.clipped((10, 10, 10))
    assert clipped.voxels == 0 and clipped.origin_zyx == (9, 0, 0)


def test_an_automatic_mask_goes_stale_when_its_marker_moves_but_an_edited_one_does_not():
    assert _mask().fits((1.0, 2.0, 3.0), 8.0)
    assert not _mask().fits((1.0, 2.5, 3.0), 8.0)
    assert not _mask().fits((1.0, 2.0, 3.0), 9.0)
    assert _mask(edited=True).fits((9.0, 9.0, 9.0), 3.0)


def test_a_session_keeps_its_masks_and_refuses_a_damaged_one():
    session = Session("1.2", "1.2.3", masks={"n1": _mask()})
    data = json.loads(json.dumps(session.to_dict()))
    assert np.array_equal(Session.from_dict(data).masks["n1"].mask, _mask().mask)
    data["masks"]["n1"]["bits"] = "!!"
    with pytest.raises(ValueError, match="mask of marker n1"):
        Session.from_dict(data)
