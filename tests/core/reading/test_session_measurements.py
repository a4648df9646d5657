"""A session keeps each mask's measurement, so a reopened study shows it without measuring again; a
measurement belongs to its mask: dropped (measured again) when the mask changed, refused when malformed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.measure.mask import NoduleMask
from core.measure.measurement import NoduleMeasurement
from core.nodule.markers import NoduleMarker
from core.reading.session import Session, SessionCorrupt, SessionStore
from tests.measurement_factory import measurement as shared_measurement

STUDY, SERIES = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"
CENTRE = (10.0, -20.5, 300.25)


def measurement(volume: float = 113.1) -> NoduleMeasurement:
    """The shared hand-made measurement, with a warning (warnings must survive the file too)."""
    return shared_measurement(volume_mm3=volume, plane="coronal", warnings=("thick slices",))


def session() -> Session:
    box = np.zeros((3, 4, 5), bool)
    box[1, 1:3, 1:4] = True
    mask = NoduleMask((40, 100, 120), box, "classical/adaptive", CENTRE, 8.0)
    markers = [NoduleMarker("m0", "N1", CENTRE, 8.0), NoduleMarker("m1", "N2", (0.0, 0.0, 0.0), 5.0)]
    return Session(STUDY, SERIES, markers, masks={"m0": mask}, measurements={"m0": measurement()})


def test_a_measurement_round_trips_with_its_mask(tmp_path):
    store = SessionStore(tmp_path)
    original = session()
    store.save(original)
    loaded = store.load(STUDY, SERIES)
    assert loaded.measurements == {"m0": measurement()}
    assert loaded.to_dict() | {"saved_at": ""} == original.to_dict() | {"saved_at": ""}
    assert Session.from_dict(original.to_dict()).measurements == original.measurements


def test_a_measurement_without_its_mask_is_not_saved():
    lonely = session()
    lonely.measurements["m1"] = measurement(50.0)  # m1 has no mask
    assert set(lonely.to_dict()["measurements"]) == {"m0"}


def test_a_measurement_of_a_changed_mask_is_dropped_not_shown_stale():
    document = session().to_dict()
    changed = session()
    box = changed.masks["m0"].mask.copy()
    box[2, 2, 2] = True  # the mask edited in another copy: its measurement is no longer its own
    changed.masks["m0"] = NoduleMask((40, 100, 120), box, "edited", CENTRE, 8.0, edited=True)
    document["masks"] = changed.to_dict()["masks"]
    loaded = Session.from_dict(document)
    assert loaded.masks["m0"].voxels == 7 and loaded.measurements == {}
    del document["masks"]  # the mask gone: so is its measurement
    assert Session.from_dict(document).measurements == {}


@pytest.mark.parametrize(
    "bad, reason",
    [
        ([], "measurements is not an object"),
        ({"m0": 3}, "measurement of marker m0 is not an object"),
        ({"m0": {"measurement": {}}}, "measurement of marker m0 is not an object with its mask's digest"),
        ({"m0": {"mask": "x", "measurement": {"volume_mm3": 1}}}, "measurement of marker m0: a saved"),
        ({"m0": {"mask": "x", "measurement": None}}, "measurement of marker m0: a saved"),
    ],
)
def test_a_malformed_measurement_sets_the_session_aside_with_the_reason(tmp_path, bad, reason):
    store = SessionStore(tmp_path)
    document = session().to_dict() | {"measurements": bad}
    store.path_for(STUDY, SERIES).write_text(json.dumps(document))
    with pytest.raises(SessionCorrupt, match=reason) as caught:
        store.load(STUDY, SERIES)
    assert caught.value.aside is not None and caught.value.aside.is_file()


def test_a_non_finite_measurement_is_refused():
    document = session().to_dict()
    document["measurements"]["m0"]["measurement"]["volume_mm3"] = float("inf")
    with pytest.raises(ValueError, match=r"measurement of marker m0: .*non-finite"):
        Session.from_dict(document)
