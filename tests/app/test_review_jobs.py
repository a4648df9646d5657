"""A background job of the review (an explanation, the lung map) that ends after the window's panels
were deleted is dropped, not run against deleted widgets (it raised in the event loop)."""

from __future__ import annotations

import threading

import shiboken6

from app.marker_store import MarkerStore
from app.review import Review


def test_a_job_ending_after_its_panel_was_deleted_is_dropped(qtbot):
    review = Review(MarkerStore())
    gate, touched = threading.Event(), []

    def done(result) -> None:
        touched.append(review.detail.cam_toggle.isChecked())  # raises on a deleted panel

    review._start(lambda progress, cancelled: gate.wait(10), done)
    shiboken6.delete(review.detail)  # the window closed while the job ran
    gate.set()
    qtbot.waitUntil(lambda: not review.busy, timeout=10_000)
    qtbot.wait(50)  # the queued "finished" is delivered
    assert touched == []
