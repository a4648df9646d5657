"""A view's texts never overlap, however narrow: the coronal and sagittal views beside the prior view are
about 180 px wide, where the slice number ran into W/L. Each visible text box lies inside the view and
clear of every other; the slice and W/L stay whole where there is room for them one above the other."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app.slice_view import SliceView
from core.imaging.mpr import plane
from core.volume import CTVolume

SLICE = "Coronal  216/480\ny -28.3 mm"
WINDOW = "W 1500  L -600"


@pytest.fixture
def view(qtbot):
    volume = CTVolume(np.zeros((480, 64, 64), np.int16), np.diag([0.7, 0.7, 1.25, 1.0]))
    shown = SliceView("coronal")
    qtbot.addWidget(shown)
    shown.set_plane(plane(volume, "coronal"))
    shown.set_corners(
        "PHANTOM, TEST 2026\nPHANTOM-test-2026\n2026-01-01", "Phantom 0.7 mm x 1.25 mm\nSTANDARD"
    )
    shown.show_slice(np.zeros((480, 64), np.float32), 215, (-1350.0, 150.0), SLICE)
    shown.set_levels((-1350.0, 150.0), WINDOW)
    shown.set_probe("-850 HU   (-120.5, -28.3, -310.2) mm LPS")
    shown.show()
    qtbot.waitExposed(shown)
    return shown


def _visible_boxes(view: SliceView) -> dict[str, object]:
    labels = {f"letter {k}": v for k, v in view.letters.items()}
    labels |= {"slice": view.info, "W/L": view.window_label, "probe": view.probe}
    labels |= {f"corner {k}": v for k, v in view.corners.items()}
    return {name: label.geometry() for name, label in labels.items() if label.isVisibleTo(view)}


@pytest.mark.parametrize("size", [(179, 363), (130, 200), (250, 400), (320, 360), (700, 700)])
def test_no_two_texts_of_a_view_overlap_however_narrow(qtbot, view, size):
    view.resize(*size)
    qtbot.waitUntil(lambda: view.graphics.width() == size[0])
    _assert_apart(view, size)
    if size[0] >= 179:  # the narrow views beside the prior: the slice and W/L whole, not cut
        assert view.info.text() == SLICE and view.window_label.text() == WINDOW
        assert "W/L" in _visible_boxes(view)
    # scrolling on: a longer slice text (a MIP slab) is laid out again, a shorter one too
    view.show_slice(
        np.zeros((480, 64), np.float32), 9, (-1350.0, 150.0), "Coronal  1000/1024  MIP 10 mm\ny -8.3 mm"
    )
    _assert_apart(view, size)
    view.show_slice(np.zeros((480, 64), np.float32), 9, (-1350.0, 150.0), "Coronal  10/480\ny -8.3 mm")
    _assert_apart(view, size)
    assert view.info.text() == "Coronal  10/480\ny -8.3 mm"


def _assert_apart(view: SliceView, size) -> None:
    boxes = _visible_boxes(view)
    inside = view.graphics.rect()
    for name, box in boxes.items():
        assert inside.contains(box), f"{name} {box} leaves the view {inside}"
    for (one, a), (other, b) in itertools.combinations(boxes.items(), 2):
        assert not a.intersects(b), f"{one} {a} overlaps {other} {b} at {size}"
    assert {"letter left", "letter right", "letter top", "letter bottom", "slice"} <= set(boxes)


def test_a_roomy_view_keeps_the_study_and_the_slice_at_the_top_corners(qtbot, view):
    view.resize(700, 700)
    qtbot.waitUntil(lambda: view.graphics.width() == 700)
    boxes = _visible_boxes(view)
    assert {"corner left", "corner right", "probe"} <= set(boxes)
    assert boxes["slice"].left() < 20 and boxes["W/L"].right() > 680  # left and right columns
    assert boxes["slice"].top() > boxes["corner left"].bottom()  # under the study, as before
