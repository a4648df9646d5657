"""Re-pairing by hand from the ranked table's context menu: unpair a pair, pair a current nodule with an
unpaired prior one; each step undoable, saved with the session and back on reopening, the follow-up
columns following; the saved registration reused; a failed re-pairing changes nothing."""

from __future__ import annotations

import json

import pytest

import app.compare_pairing as compare_pairing
from app.compare_columns import FOLLOW_UP_COLUMNS
from app.nodule_table import FOLLOW_UP
from core.followup import compare as compare_module
from core.followup.compare import FollowUp
from core.nodule.tracking import tracking_uid
from tests.app.followup_window import compared, opened, write_pair

TREND, RADS = 3, 4  # follow-up columns


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory):
    return write_pair(tmp_path_factory, "window-pairing")


def _columns(window, marker_id: str) -> list[str]:
    table = window.review.table
    row = next(r for r in range(table.rowCount()) if table.marker_at(r) == marker_id)
    return [table.item(row, FOLLOW_UP + k).text() for k in range(len(FOLLOW_UP_COLUMNS))]


def _trigger(qtbot, window, action) -> None:
    action.trigger()
    qtbot.waitUntil(lambda: not window.busy, timeout=60_000)


def _reading(window) -> FollowUp:
    return FollowUp.from_dict(window.follow_up)


def _never(*args, **kwargs):
    raise AssertionError("registered again")


def test_unpair_and_pair_by_hand_undoably_saved_and_back_on_reopening(qtbot, follow_up, monkeypatch):
    truth = json.loads((follow_up / "ground_truth.json").read_text())
    window = compared(qtbot, follow_up / "current")
    monkeypatch.setattr(compare_module, "register", _never)
    first = _reading(window)
    pair = first.pairs[0]
    paired_columns = _columns(window, pair.current_id)
    assert paired_columns[TREND] == pair.growth.trend
    # unpair: the current nodule is new, its prior resolved; the columns say so
    menu = window.pairing_menu(pair.current_id)
    unpair = next(a for a in menu.actions() if a.text().startswith("Unpair"))
    assert f"({pair.distance_mm:.1f} mm)" in unpair.text()
    _trigger(qtbot, window, unpair)
    apart = _reading(window)
    assert pair.current_id in [n.current_id for n in apart.new] and pair.prior_id in apart.resolved
    assert (pair.prior_id, pair.current_id) in apart.overrides.unpaired
    assert _columns(window, pair.current_id)[TREND] == "new"
    new_rads = next(n for n in apart.new if n.current_id == pair.current_id).lung_rads
    assert _columns(window, pair.current_id)[RADS] == new_rads.category
    assert window.sessions.load(*window.key).follow_up == window.follow_up
    assert apart.registration.to_dict() == first.registration.to_dict()
    # undo brings the pair back (and saves it), redo takes it away again
    window.markers.undo.undo()
    assert _columns(window, pair.current_id) == paired_columns
    assert window.sessions.load(*window.key).follow_up["pairs"] == first.to_dict()["pairs"]
    window.markers.undo.redo()
    assert _columns(window, pair.current_id)[TREND] == "new"
    # pair the truly new nodule with a prior one: only the unpaired prior nodules are offered
    new_id = truth["new"][0]
    choices = next(a for a in window.pairing_menu(new_id).actions() if a.menu() is not None).menu()
    offered = [a.text() for a in choices.actions()]
    resolved = set(_reading(window).resolved)
    assert len(offered) == len(resolved) == 2
    names = {m.id: m.name for m in window.prior_view.prior.markers}
    assert {text.split(" (")[0] for text in offered} == {names[i] for i in resolved}
    assert all("mm away after registration" in text for text in offered)
    gone = truth["resolved"][0]
    choice = next(a for a in choices.actions() if a.text().startswith(names[gone] + " ("))
    _trigger(qtbot, window, choice)
    forced = next(p for p in _reading(window).pairs if p.current_id == new_id)
    assert forced.prior_id == gone and forced.manual and forced.growth is not None
    assert forced.tracking_uid == tracking_uid(first.prior.series_uid, gone)  # the prior nodule's UID
    columns = _columns(window, new_id)
    assert columns[TREND] == forced.growth.trend and columns[0] and columns[1]
    assert columns[RADS] == forced.lung_rads.category
    saved = window.follow_up
    window.close()
    # reopened: the pairings as left, the prior shown again with them
    again = opened(qtbot, follow_up / "current")
    qtbot.waitUntil(lambda: again.prior_view.reading is not None, timeout=60_000)
    assert again.follow_up == saved
    assert _columns(again, new_id) == columns and _columns(again, pair.current_id)[TREND] == "new"
    menu = again.pairing_menu(new_id)
    assert any(a.text().startswith("Unpair") for a in menu.actions())
    choices = next(a for a in again.pairing_menu(pair.current_id).actions() if a.menu()).menu()
    assert [a.text().split(" (")[0] for a in choices.actions()] == [names[pair.prior_id]]  # the one left


def test_a_failed_re_pairing_or_one_without_the_prior_changes_nothing(qtbot, follow_up, monkeypatch):
    window = compared(qtbot, follow_up / "current")
    before, steps = dict(window.follow_up), window.markers.undo.count()
    pair = _reading(window).pairs[0]

    def fails(*args, **kwargs):
        raise ValueError("the current study cannot be measured")

    monkeypatch.setattr(compare_pairing, "compare", fails)
    _trigger(qtbot, window, window.pairing_menu(pair.current_id).actions()[0])
    assert "Pairing not changed: the current study cannot be measured" in window.statusBar().currentMessage()
    assert window.follow_up == before and window.markers.undo.count() == steps
    assert window.sessions.load(*window.key).follow_up == before
    window.prior_view.clear()
    window.repair("unpair", pair.prior_id, pair.current_id)
    assert compare_pairing.NO_PRIOR in window.statusBar().currentMessage()
    assert window.follow_up == before and not window.busy
    menu = window.pairing_menu(pair.current_id)  # no prior shown: nothing to choose, and why
    assert [(a.text(), a.isEnabled()) for a in menu.actions()] == [(compare_pairing.NO_PRIOR, False)]
