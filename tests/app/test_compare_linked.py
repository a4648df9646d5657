"""The prior view is linked both ways: a click in it moves the cursor of both views (through the
registration), as a click in the current view does; it draws the prior's nodules, the one paired with
the selected nodule highlighted."""

from __future__ import annotations

import numpy as np
import pytest

from app.marker_layer import MARKER, SELECTED
from core.followup.compare import FollowUp
from core.nodule.markers import read_markers
from tests.app.followup_window import compared, write_pair


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory):
    return write_pair(tmp_path_factory, "window-linked")


def test_a_click_in_the_prior_view_moves_the_cursor_of_both_views(qtbot, follow_up):
    window = compared(qtbot, follow_up / "current")
    prior_view, ws = window.prior_view, window.workspace
    prior = prior_view.volume
    nodule = read_markers(follow_up / "prior" / "markers.json")[0]
    voxel = prior.mm_to_voxel(np.asarray(nodule.centre_mm, float))
    voxel[2] = prior_view.view.index  # a click lands on the slice shown
    clicked_mm = prior.voxel_to_mm(voxel)
    before = ws.cursor_mm().copy()
    prior_view.view.clicked.emit(voxel)
    expected = prior_view.registration.to_current(clicked_mm)
    assert np.linalg.norm(ws.cursor_mm() - expected) < 1.5  # the current cursor: the point, carried
    assert np.linalg.norm(ws.cursor_mm() - before) > 5.0
    assert np.linalg.norm(prior_view.centre_mm() - clicked_mm) < 2.5  # the prior's crosshair on it
    # a left-drag in the prior view follows the mouse the same way
    voxel[0] += 10
    prior_view.view.dragged.emit("move", voxel)
    expected = prior_view.registration.to_current(prior.voxel_to_mm(voxel))
    assert np.linalg.norm(ws.cursor_mm() - expected) < 1.5


def test_the_prior_view_draws_the_prior_nodules_the_selected_ones_pair_highlighted(qtbot, follow_up):
    window = compared(qtbot, follow_up / "current")
    layer = window.prior_view.markers
    reading = FollowUp.from_dict(window.follow_up)
    names = {m.id: m.name for m in read_markers(follow_up / "prior" / "markers.json")}
    for pair in reading.pairs:
        window.markers.select(pair.current_id)
        window.workspace.centre_on_mm(window.markers.get(pair.current_id).centre_mm)  # both views on it
        drawn = [entry[0] for entry in layer.drawn]
        assert pair.prior_id in drawn
        index = drawn.index(pair.prior_id)
        assert layer.circles[index].pen().color() == SELECTED
        assert layer.labels[index].textItem.toPlainText() == names[pair.prior_id]
        others = [layer.circles[k].pen().color() for k in range(len(drawn)) if k != index]
        assert all(colour == MARKER for colour in others)
    window.markers.select("")  # nothing selected: no prior nodule highlighted
    assert all(layer.circles[k].pen().color() == MARKER for k in range(len(layer.drawn)))
