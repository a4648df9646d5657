"""The worklist's summary of one saved session: the top nodule, the worst Lung-RADS category (with the
reader's overrides), the confirmed count, and a study name without a source."""

from __future__ import annotations

from core.nodule.labels import NoduleLabel
from core.nodule.markers import NoduleMarker
from core.reading.session import Session
from core.reading.worklist import summarise

SMALL = NoduleMarker("m1", "N1", (0.0, 0.0, 5.0), 4.0)
LARGE = NoduleMarker("m2", "N2", (0.0, 0.0, 9.0), 9.0)
# Solid, no benign calcification, marked spiculation: 9 mm solid is 4A, raised to 4X by the reader.
MODEL = {"texture": 5.0, "calcification": 6.0, "spiculation": 1.0}  # the model saw no spiculation
READER = NoduleLabel(malignancy=4, attributes={"texture": 5, "calcification": 6, "spiculation": 5})


def test_a_session_is_summarised_with_its_top_nodule_and_the_readers_category():
    session = Session(
        "1.2.3.4.5.6.7.8.9.10.11.12.13",
        "1.2.3.9",
        [SMALL, LARGE],
        {"m2": READER},
        saved_at="2026-12-06T10:00:00+00:00",
        results={
            "m1": {"malignancy_probability": 0.8},  # no attributes: no category of its own
            "m2": {"malignancy_probability": 0.3, "attributes": MODEL},
            "gone": {"malignancy_probability": 0.99},  # a result whose marker was deleted is left out
        },
        source="/studies/case-7",
    )
    summary = summarise(session)
    assert summary["study"] == "case-7" and summary["source"] == "/studies/case-7"
    assert summary["nodules"] == 2 and summary["confirmed"] == 1
    assert summary["top"] == 0.8 and summary["top_marker"] == "m1"
    assert summary["lung_rads"] == "4X" and "reader" in summary["lung_rads_rule"]
    assert summary["saved"] == "2026-12-06T10:00:00+00:00"


def test_a_session_never_analysed_has_no_top_and_no_category():
    summary = summarise(Session("1.2.3.4.5.6.7.8.9.10.11.12.13", "1.2.3.9", [SMALL]))
    assert summary["study"] == ".10.11.12.13"  # the study UID's tail
    assert summary["top"] is None and summary["top_marker"] is None
    assert summary["lung_rads"] == "" and summary["lung_rads_rule"] == ""


def test_the_category_is_from_the_measured_size_of_a_measured_mask_as_in_the_table():
    """9 mm marker, solid: 4A from the marker; its mask measured 5.0 mm: category 2 (solid < 6 mm),
    as the review table shows it. A moved marker's automatic mask (and its measurement) no longer
    belongs to it: the marker's size counts again."""
    from dataclasses import replace

    from core.nodule.lungrads import nodule_category
    from tests.core.reading.test_session_measurements import measurement, session

    base = session()  # marker m0 (8 mm) with its mask and a part-solid measurement
    solid = replace(measurement(), texture="solid", solid_diameter_mm=None, mean_diameter_mm=5.0)
    marker = replace(base.markers[0], diameter_mm=9.0)
    mask = replace(base.masks["m0"], diameter_mm=9.0)
    model = {"malignancy_probability": 0.4, "attributes": MODEL}
    kept = Session(base.study_uid, base.series_uid, [marker], results={"m0": model}, masks={"m0": mask})
    kept.measurements = {"m0": solid}
    table = nodule_category(9.0, MODEL, None, measured=solid)  # what the review table calls
    summary = summarise(kept)
    assert summary["lung_rads"] == table.category == "2" and "measured" in summary["lung_rads_rule"]

    moved = replace(marker, centre_mm=(0.0, 0.0, 0.0))
    kept.markers = [moved]
    assert summarise(kept)["lung_rads"] == nodule_category(9.0, MODEL, None).category == "4A"
    kept.markers, kept.measurements = [marker], {}  # a mask never measured: the marker's size
    assert summarise(kept)["lung_rads"] == "4A"
