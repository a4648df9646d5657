"""The prior view is linked both ways: a click in it moves the cursor of both views (through the
registration), as a click in the current view does."""

from __future__ import annotations

import numpy as np
import pytest

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
