"""Carrying a resolved prior nodule to the current study: proposed where the registration puts it, the
current view centred there; Confirm adds a marker paired with it (undoable, saved, back on reopening);
Discard changes nothing; a failed carry changes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

import app.compare_pairing as compare_pairing
from core.followup.compare import FollowUp, carried
from tests.app.followup_window import compared, opened, write_pair


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory):
    return write_pair(tmp_path_factory, "window-carry")


def _carry(qtbot, window, prior_id: str) -> None:
    name = next(m.name for m in window.prior_view.prior.markers if m.id == prior_id)
    menu = window.pairing_menu(next(iter(window.markers.markers)).id)
    action = next(a for a in menu.actions() if a.text() == f"Carry the prior's {name} to this study")
    action.trigger()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)


def test_carry_confirm_pairs_saves_undoes_and_reopens(qtbot, follow_up):
    gone = json.loads((follow_up / "ground_truth.json").read_text())["resolved"][0]
    window = compared(qtbot, follow_up / "current")
    first = FollowUp.from_dict(window.follow_up)
    assert gone in first.resolved
    ids = [m.id for m in window.markers.markers]
    _carry(qtbot, window, gone)
    prior_marker = next(m for m in window.prior_view.prior.markers if m.id == gone)
    proposed = window.markers.preview
    expected = carried(window.prior_view.prior.volume, window.volume, prior_marker, first.registration)
    assert proposed is not None and proposed.name == f"{prior_marker.name}? (proposed)"
    assert np.allclose(proposed.centre_mm, expected) and proposed.diameter_mm == prior_marker.diameter_mm
    assert np.allclose(window.workspace.cursor_mm(), expected, atol=3)  # centred on it
    assert [m.id for m in window.markers.markers] == ids and not window.carry_bar.isHidden()
    window.carry_bar.confirm.click()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    added = window.markers.get(proposed.id)
    assert added is not None and window.markers.preview is None and window.carry_bar.isHidden()
    assert "?" not in added.name
    after = FollowUp.from_dict(window.follow_up)
    pair = next(p for p in after.pairs if p.current_id == added.id)
    assert pair.prior_id == gone and pair.manual and gone not in after.resolved
    saved = window.sessions.load(*window.key)
    assert saved.follow_up == window.follow_up and added.id in [m.id for m in saved.markers]
    # one undo takes back both the marker and the pairing, and saves that
    window.markers.undo.undo()
    assert window.markers.get(added.id) is None and gone in FollowUp.from_dict(window.follow_up).resolved
    saved = window.sessions.load(*window.key)
    assert [m.id for m in saved.markers] == ids and saved.follow_up["pairs"] == first.to_dict()["pairs"]
    window.markers.undo.redo()
    kept = dict(window.follow_up)
    assert window.markers.get(added.id) is not None
    window.close()
    again = opened(qtbot, follow_up / "current")
    qtbot.waitUntil(lambda: again.prior_view.reading is not None, timeout=60_000)
    assert again.follow_up == kept and again.markers.get(added.id) is not None


def test_discard_or_a_failed_carry_changes_nothing(qtbot, follow_up, monkeypatch):
    window = compared(qtbot, follow_up / "current")
    reading = FollowUp.from_dict(window.follow_up)
    before, markers, steps = dict(window.follow_up), list(window.markers.markers), window.markers.undo.count()
    saved = window.sessions.load(*window.key)
    _carry(qtbot, window, reading.resolved[0])
    assert window.markers.preview is not None
    window.carry_bar.discard.click()
    assert window.markers.preview is None and window.carry_bar.isHidden()
    assert window.follow_up == before and list(window.markers.markers) == markers
    assert window.markers.undo.count() == steps and window.sessions.load(*window.key) == saved

    def fails(*args, **kwargs):
        raise ValueError("the current study cannot be measured")

    # a right-click on the unpaired prior nodule in the prior view offers the same, on a paired one nothing
    prior = window.prior_view
    by_id = {m.id: m for m in prior.prior.markers}
    window.workspace.centre_on_mm(
        prior.registration.to_current(np.asarray(by_id[reading.resolved[0]].centre_mm))
    )
    at = prior.volume.mm_to_voxel(np.asarray(by_id[reading.resolved[0]].centre_mm))
    name = by_id[reading.resolved[0]].name
    assert [a.text() for a in window.prior_menu(at).actions()] == [f"Carry the prior's {name} to this study"]
    paired = by_id[reading.pairs[0].prior_id]
    window.workspace.centre_on_mm(prior.registration.to_current(np.asarray(paired.centre_mm)))
    assert window.prior_menu(prior.volume.mm_to_voxel(np.asarray(paired.centre_mm))) is None
    _carry(qtbot, window, reading.resolved[0])
    monkeypatch.setattr(compare_pairing, "compare", fails)  # the comparison again, shared
    window.confirm_carry()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    assert "Not carried: the current study cannot be measured" in window.statusBar().currentMessage()
    assert window.follow_up == before and list(window.markers.markers) == markers
    assert window.markers.undo.count() == steps and window.markers.preview is None
