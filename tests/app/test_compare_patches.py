"""The detail panel shows a paired nodule at both time points side by side: the prior patch around its
prior nodule, the current around it, the same mm per pixel and window, with their dates; hidden for a
nodule without a prior and when no prior is shown."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.followup.compare import FollowUp
from core.imaging.mpr import plane
from tests.app.followup_window import compared, write_pair


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory):
    return write_pair(tmp_path_factory, "window-patches")


def _centre_value(patch) -> float:
    """The grey value drawn under the patch's circle (the nodule's centre)."""
    rect = patch.circle.rect()
    scale = patch.image.transform()
    column = int(rect.center().x() / scale.m11())
    row = int(rect.center().y() / scale.m22())
    return float(patch.image.image[row, column])


def test_a_paired_nodule_shows_both_time_points_side_by_side(qtbot, follow_up):
    truth = json.loads((follow_up / "ground_truth.json").read_text())
    window = compared(qtbot, follow_up / "current")
    window.show()
    qtbot.waitExposed(window)
    pair_patches, reading = window.review.detail.pair, FollowUp.from_dict(window.follow_up)
    prior = window.prior_view.prior
    for pair in reading.pairs:
        window.markers.select(pair.current_id)
        assert pair_patches.isVisible()
        before, now = pair_patches.prior, pair_patches.current
        # the same mm across in views of the same size: the same mm per pixel; the same window
        assert before.size() == now.size()
        assert before.box.viewRect().width() == pytest.approx(now.box.viewRect().width())
        assert before.box.viewRect().width() == pytest.approx(2 * pair_patches.half_mm)
        assert tuple(before.image.levels) == tuple(now.image.levels)
        # each patch is its own study at its own nodule, dated
        for patch, volume, marker, date in (
            (before, prior.volume, next(m for m in prior.markers if m.id == pair.prior_id), reading.prior),
            (now, window.volume, window.markers.get(pair.current_id), reading.current),
        ):
            axial = plane(volume, "axial")
            u, v, depth = axial.to_screen(volume.mm_to_voxel(np.asarray(marker.centre_mm, float)))
            shown = axial.image(volume.array, round(depth))[int(v), int(u)]  # the pixel under the centre
            assert _centre_value(patch) == pytest.approx(float(shown), abs=1e-3)
            box_title = pair_patches.boxes[0 if patch is before else 1].findChild(type(pair_patches.caption))
            assert date.date.isoformat() in box_title.text() and marker.name in box_title.text()
    window.markers.select(truth["new"][0])  # a new nodule has no prior patch
    assert not pair_patches.isVisible()
    window.markers.select(reading.pairs[0].current_id)
    assert pair_patches.isVisible()
    window.prior_view.clear()  # another study, or no prior: gone
    assert not pair_patches.isVisible()
