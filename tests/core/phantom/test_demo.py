"""The built-in demo study: test-split nodules of different kinds, generated once, reused."""

from __future__ import annotations

from core.lidc.table import load_nodules
from core.phantom.appearance import appearance_from_ratings
from core.phantom.demo import choose_demo_nodules, demo_markers, demo_study


def test_demo_nodules_are_varied_and_from_the_reserved_split():
    chosen = choose_demo_nodules(load_nodules())
    assert len(chosen) >= 5 and {n.split for n in chosen} == {"test"}
    assert {"benign", "malignant"} <= {n.label for n in chosen}
    kinds = {appearance_from_ratings(n.mean_ratings).texture_class for n in chosen}
    assert len(kinds) >= 2


def test_demo_is_generated_once_with_ready_markers():
    folder = demo_study()
    stamp = (folder / "ground_truth.json").stat().st_mtime_ns
    assert demo_study() == folder and (folder / "ground_truth.json").stat().st_mtime_ns == stamp
    markers = demo_markers(folder)
    assert len(markers) >= 5 and all(m["diameter_mm"] > 3 for m in markers)
    assert not any(folder.parent.glob("*.partial-*"))
