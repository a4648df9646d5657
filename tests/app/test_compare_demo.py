"""The demo opens with its prior: a new user presses the compare key and sees follow-up at once."""

from __future__ import annotations

import json

from app.main_window import MainWindow


def test_the_demo_compares_with_its_prior_at_one_key(qtbot, demo_home):
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_demo()
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=300_000)
    current = json.loads((demo_home / "ground_truth.json").read_text())
    assert window.volume.metadata.study_uid == current["study_uid"]  # the current study, not its prior
    window.actions_by_key["compare_prior"].trigger()
    qtbot.waitUntil(lambda: not window.busy, timeout=300_000)
    assert "Compared with the prior of 2025-01-01" in window.statusBar().currentMessage()
    truth = json.loads((demo_home / "follow_up_truth.json").read_text())
    names = {m.id: m.name.lower() for m in window.markers.markers}  # N1.. for the truth n1..
    pairs = {(p["prior_id"], names[p["current_id"]]) for p in window.follow_up["pairs"]}
    assert pairs == {(p["prior_id"], p["current_id"]) for p in truth["pairs"]}
    assert [names[i] for i in window.follow_up["new"]] == truth["new"]
    assert window.follow_up["resolved"] == truth["resolved"]
    assert not window.prior_view.isHidden()
