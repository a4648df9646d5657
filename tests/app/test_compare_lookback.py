"""Looking for a new current nodule in the prior: proposed where the registration carries it back, drawn in
the prior view; Confirm adds it to the prior's markers held in the reading, paired (undoable, saved, back on
reopening and on P), the prior's own files untouched; Discard changes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.followup.compare import FollowUp
from tests.app.followup_window import compared, opened, write_pair


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory):
    return write_pair(tmp_path_factory, "window-lookback")


def _files(folder) -> dict:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _look(qtbot, window, current_id: str) -> None:
    name = window.markers.get(current_id).name
    menu = window.pairing_menu(current_id)
    next(a for a in menu.actions() if a.text() == f"Look for {name} in the prior").trigger()


def test_look_back_confirm_pairs_in_the_prior_saved_undone_and_back(qtbot, follow_up):
    prior_files = _files(follow_up / "prior")
    new_id = json.loads((follow_up / "ground_truth.json").read_text())["new"][0]
    window = compared(qtbot, follow_up / "current")
    first = FollowUp.from_dict(window.follow_up)
    prior_ids = [m.id for m in window.prior_view.prior.markers]
    marker = window.markers.get(new_id)
    _look(qtbot, window, new_id)
    proposed = window.prior_view.proposed
    back = first.registration.to_prior(np.asarray(marker.centre_mm))
    assert proposed.name == f"{marker.name}? (proposed)" and np.allclose(proposed.centre_mm, back)
    assert proposed.id in [d[0] for d in window.prior_view.markers.drawn]  # drawn where the view is
    window.carry_bar.confirm.click()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)
    after = FollowUp.from_dict(window.follow_up)
    pair = next(p for p in after.pairs if p.current_id == new_id)
    found = pair.prior_id
    assert found not in prior_ids and pair.manual and new_id not in [n.current_id for n in after.new]
    assert [m.id for m in window.prior_view.prior.markers] == [*prior_ids, found]
    assert window.sessions.load(*window.key).follow_up == window.follow_up
    window.markers.undo.undo()
    assert window.follow_up["pairs"] == first.to_dict()["pairs"]
    assert [m.id for m in window.prior_view.prior.markers] == prior_ids
    window.markers.undo.redo()
    kept = dict(window.follow_up)
    window.close()
    assert _files(follow_up / "prior") == prior_files  # the prior's own files never written
    again = opened(qtbot, follow_up / "current")
    qtbot.waitUntil(lambda: again.prior_view.reading is not None, timeout=60_000)
    assert again.follow_up == kept and found in [m.id for m in again.prior_view.prior.markers]
    again.actions_by_key["compare_prior"].trigger()  # P again: the addition and its pairing kept
    qtbot.waitUntil(lambda: not again.busy, timeout=120_000)
    pair = next(p for p in FollowUp.from_dict(again.follow_up).pairs if p.current_id == new_id)
    assert pair.prior_id == found


def test_discarding_the_look_back_changes_nothing(qtbot, follow_up):
    window = compared(qtbot, follow_up / "current")
    new_id = FollowUp.from_dict(window.follow_up).new[0].current_id
    before, steps, prior = dict(window.follow_up), window.markers.undo.count(), window.prior_view.prior
    _look(qtbot, window, new_id)
    assert window.prior_view.proposed is not None
    window.carry_bar.discard.click()
    assert window.prior_view.proposed is None and window.carry_bar.isHidden()
    assert window.follow_up == before and window.prior_view.prior is prior
    assert window.markers.undo.count() == steps
