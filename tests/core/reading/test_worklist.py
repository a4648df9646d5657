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
