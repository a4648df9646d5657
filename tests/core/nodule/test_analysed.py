"""A marker's saved result: stale once the marker moves or is resized or the model changes, and its
saved form read back (or dropped, when it is from another version)."""

from __future__ import annotations

from dataclasses import replace

from core.nodule.analysed import Analysed, current_results, stale_markers
from core.nodule.markers import NoduleMarker
from core.nodule.prediction import NoduleResult

MARKER = NoduleMarker("m1", "N1", (1.0, 2.0, 3.0), 8.0)
RESULT = NoduleResult("m1", 0.7312, 0.05, {"subtlety": 4.0, "texture": 5.0})
ANALYSED = Analysed(RESULT, MARKER.centre_mm, MARKER.diameter_mm, "abc")


def test_it_fits_only_the_same_marker_and_weights():
    assert ANALYSED.fits(MARKER, "abc")
    assert not ANALYSED.fits(MARKER, "other weights")
    assert not ANALYSED.fits(replace(MARKER, diameter_mm=9.0), "abc")
    assert not ANALYSED.fits(replace(MARKER, centre_mm=(1.0, 2.0, 3.1)), "abc")


def test_its_saved_form_reads_back_and_a_foreign_one_is_dropped():
    saved = ANALYSED.to_dict()
    assert saved["malignancy_probability"] == 0.7312 and saved["weights_sha256"] == "abc"
    assert saved["center_mm"] == [1.0, 2.0, 3.0] and saved["diameter_mm"] == 8.0
    assert Analysed.from_dict("m1", saved) == ANALYSED
    assert Analysed.from_dict("m1", {k: v for k, v in saved.items() if k != "weights_sha256"}) is None
    assert Analysed.from_dict("m1", saved | {"attributes": None}) is None


def test_current_results_fit_their_markers_and_are_ranked_among_themselves():
    other = NoduleMarker("m2", "N2", (5.0, 5.0, 5.0), 6.0)
    gone = NoduleMarker("m3", "N3", (9.0, 9.0, 9.0), 6.0)
    results = {
        "m1": ANALYSED,
        "m2": Analysed(replace(RESULT, id="m2", malignancy=0.9), other.centre_mm, other.diameter_mm, "abc"),
        "m3": Analysed(replace(RESULT, id="m3", malignancy=0.95), gone.centre_mm, gone.diameter_mm, "old"),
    }
    current = current_results(results, [MARKER, other, gone], "abc")
    assert list(current) == ["m2", "m1"] and [r.rank for r in current.values()] == [1, 2]
    assert results["m1"].result.rank == 0  # the saved results keep their own rank
    moved = replace(MARKER, centre_mm=(1.0, 2.0, 4.0))
    assert stale_markers(results, [moved, other, gone], "abc") == [moved, gone]
    assert stale_markers(results, [NoduleMarker("new", "N4", (0.0, 0.0, 0.0))], "abc")[0].id == "new"


def test_a_saved_result_that_is_not_finite_is_dropped():
    """Review: 1e999 in a session's results read back as infinity and was saved again with
    ``allow_nan=False``: every later save of that session failed, its markers went unsaved."""
    saved = ANALYSED.to_dict()
    assert Analysed.from_dict("m1", saved | {"malignancy_probability": float("inf")}) is None
    assert Analysed.from_dict("m1", saved | {"uncertainty": float("nan")}) is None
    assert Analysed.from_dict("m1", saved | {"attributes": {"subtlety": float("inf")}}) is None
    assert Analysed.from_dict("m1", saved | {"center_mm": [1.0, float("inf"), 3.0]}) is None
