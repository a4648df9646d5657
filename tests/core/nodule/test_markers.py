"""Nodule markers: validation, the MarkerSet, the outside-the-series check, markers.json and atomic writes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from core.nodule.markers import (
    DEFAULT_DIAMETER_MM,
    SCHEMA,
    MarkerError,
    MarkerSet,
    NoduleMarker,
    check_inside,
    read_markers,
    write_markers,
)
from core.nodule.prediction import Marker
from core.util.atomic import atomic_write_bytes, atomic_write_text
from core.volume import CTVolume


def marker(marker_id="a", name="N1", centre=(1.0, 2.0, 3.0), diameter=8.0, notes=""):
    return NoduleMarker(marker_id, name, centre, diameter, notes)


# -- NoduleMarker ----------------------------------------------------------------------------------


def test_marker_converts_its_values_and_feeds_inference():
    m = NoduleMarker("a", "N1", [1, 2, 3])
    assert m.centre_mm == (1.0, 2.0, 3.0) and m.diameter_mm == DEFAULT_DIAMETER_MM == 8.0
    assert m.notes == "" and hash(m) == hash(NoduleMarker("a", "N1", (1.0, 2.0, 3.0)))
    assert m.to_inference() == Marker("a", (1.0, 2.0, 3.0), 8.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"centre": (1.0, float("nan"), 3.0)}, "N7: centre"),
        ({"centre": (1.0, 2.0)}, "N7: centre"),
        ({"centre": ("x", 2.0, 3.0)}, "N7: centre"),
        ({"diameter": 0.0}, r"N7: diameter 0.0 mm is not in \(0, 100\]"),
        ({"diameter": 100.5}, "N7: diameter"),
        ({"diameter": float("inf")}, "N7: diameter"),
        ({"diameter": "big"}, "N7: diameter 'big' is not a number"),
        ({"marker_id": ""}, "id must be non-empty"),
    ],
)
def test_marker_refuses_bad_values_naming_the_marker(kwargs, message):
    with pytest.raises(MarkerError, match=message):
        marker(**{"name": "N7", **kwargs})


def test_marker_error_is_a_value_error():
    assert issubclass(MarkerError, ValueError)
    assert marker(diameter=100.0).diameter_mm == 100.0


# -- MarkerSet -------------------------------------------------------------------------------------


def test_marker_set_keeps_order_and_supports_undo_style_edits():
    markers = MarkerSet([marker("a", "N1"), marker("b", "N2")])
    assert len(markers) == 2 and "a" in markers and "z" not in markers and markers.get("b").name == "N2"
    assert [m.id for m in markers] == ["a", "b"] and markers.index("b") == 1
    markers.add(marker("c", "N3"), index=1)
    assert [m.id for m in markers.markers] == ["a", "c", "b"]
    index, removed = markers.remove("c")
    assert (index, removed.id) == (1, "c") and [m.id for m in markers] == ["a", "b"]
    markers.add(removed, index)  # undo of the removal puts it back in its place
    assert [m.id for m in markers] == ["a", "c", "b"]
    moved = marker("a", "N1", centre=(9.0, 9.0, 9.0))
    old = markers.replace(moved)
    assert old.centre_mm == (1.0, 2.0, 3.0) and markers.get("a") is moved and markers.index("a") == 0
    assert isinstance(markers.markers, tuple) and moved in markers


def test_marker_set_refuses_duplicates_and_unknown_ids():
    markers = MarkerSet([marker("a")])
    with pytest.raises(MarkerError, match="already in use"):
        markers.add(marker("a", "other"))
    with pytest.raises(MarkerError, match="already in use"):
        MarkerSet([marker("a"), marker("a", "N2")])
    for call in (markers.get, markers.index, markers.remove):
        with pytest.raises(KeyError, match="zz"):
            call("zz")
    with pytest.raises(KeyError):
        markers.replace(marker("zz"))
    with pytest.raises(TypeError):
        markers.add(Marker("b", (0.0, 0.0, 0.0), 5.0))  # type: ignore[arg-type]
    assert len(markers) == 1


def test_new_marker_takes_a_fresh_id_and_the_first_free_name_without_adding_it():
    markers = MarkerSet()
    first = markers.new_marker((1, 2, 3))
    assert first.name == "N1" and first.diameter_mm == DEFAULT_DIAMETER_MM and len(markers) == 0
    assert len(first.id) == 32 and int(first.id, 16) >= 0
    markers.add(first)
    second = markers.new_marker((4, 5, 6), diameter_mm=12.0)
    assert second.name == "N2" and second.diameter_mm == 12.0 and second.id != first.id
    markers.add(second)
    markers.add(markers.new_marker((0, 0, 0)))
    markers.remove(second.id)
    assert markers.new_marker((0, 0, 0)).name == "N2"  # the gap is reused
    markers.add(marker("x", "N2"))
    assert markers.new_marker((0, 0, 0)).name == "N4"
    with pytest.raises(MarkerError):
        markers.new_marker((0, 0, float("nan")))


# -- inside the series -----------------------------------------------------------------------------


def small_volume():
    """x: 10 columns of 1 mm from 0; y: 8 rows of 1 mm from 0; z: 4 slices of 2.5 mm from -100."""
    affine = np.eye(4)
    affine[:3, :3] = np.diag([1.0, 1.0, 2.5])
    affine[:3, 3] = [0.0, 0.0, -100.0]
    return CTVolume(np.zeros((4, 8, 10), np.int16), affine)


def test_check_inside_accepts_points_in_the_series():
    volume = small_volume()
    for point in [(0.0, 0.0, -100.0), (4.5, 3.5, -95.0), (9.4, 7.4, -92.0), (-0.5, -0.5, -101.25)]:
        check_inside(volume, point)


def test_check_inside_refuses_outside_points_in_plain_words():
    volume = small_volume()
    with pytest.raises(MarkerError) as caught:
        check_inside(volume, (4.0, 3.0, -80.0))
    message = str(caught.value)
    assert message.startswith("marker at (4.0, 3.0, -80.0) mm is outside the series")
    assert "x from -0.5 to 9.5" in message and "y from -0.5 to 7.5" in message
    assert "z from -101.2 to -91.2" in message
    for point in [(20.0, 3.0, -95.0), (4.0, -3.0, -95.0), (4.0, 3.0, float("nan"))]:
        with pytest.raises(MarkerError, match="outside the series"):
            check_inside(volume, point)


# -- markers.json ----------------------------------------------------------------------------------


def test_markers_file_round_trip(tmp_path):
    path = tmp_path / "markers.json"
    markers = [marker("a", "N1", notes="spiculated?"), marker("b", "", (-1.5, 2.25, -300.0), 4.0)]
    write_markers(path, markers)
    data = json.loads(path.read_text())
    assert data["schema"] == SCHEMA
    assert data["markers"][0] == {
        "id": "a",
        "name": "N1",
        "center_mm": [1.0, 2.0, 3.0],
        "diameter_mm": 8.0,
        "notes": "spiculated?",
    }
    assert read_markers(path) == markers
    write_markers(path, MarkerSet(markers[::-1]))
    assert read_markers(path) == markers[::-1]


def test_old_markers_files_without_name_notes_or_schema_still_read(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"markers": [{"id": 7, "center_mm": [1, 2, 3], "diameter_mm": 5}]}))
    (only,) = read_markers(path)
    assert only == NoduleMarker("7", "", (1.0, 2.0, 3.0), 5.0, "")


BAD_FILES = {
    "missing": (None, "no such markers file"),
    "folder": ("<folder>", "is a folder"),
    "binary": (b"\xff\xfe\x00", r"not a markers file \(not UTF-8 text\)"),
    "bad-json": ("{not json", r"not a markers file \(invalid JSON at line 1 column 2"),
    "empty": ("", "not a markers file"),
    "list": ("[]", 'no "markers" list'),
    "no-list": ('{"markers": {}}', 'no "markers" list'),
    "schema": ('{"schema": "other/2", "markers": []}', "schema 'other/2'"),
    "not-object": ('{"markers": [3]}', "marker #1 is not a JSON object"),
    "no-id": ('{"markers": [{"center_mm": [1, 2, 3], "diameter_mm": 4}]}', "marker #1 has no 'id'"),
    "bad-id": ('{"markers": [{"id": null, "center_mm": [1, 2, 3]}]}', "marker #1 id None is not text"),
    "no-centre": ('{"markers": [{"id": "a", "diameter_mm": 4}]}', "marker a: has no 'center_mm'"),
    "no-diameter": ('{"markers": [{"id": "a", "center_mm": [1, 2, 3]}]}', "marker a: has no 'diameter_mm'"),
    "bad-centre": ('{"markers": [{"id": "a", "center_mm": 5, "diameter_mm": 4}]}', "a: center_mm 5 is not"),
    "short-centre": ('{"markers": [{"id": "a", "center_mm": [1, 2], "diameter_mm": 4}]}', "a: centre"),
    "nan-centre": ('{"markers": [{"id": "a", "center_mm": [NaN, 2, 3], "diameter_mm": 4}]}', "a: centre"),
    "bad-diameter": (
        '{"markers": [{"id": "a", "name": "N3", "center_mm": [1, 2, 3], "diameter_mm": -4}]}',
        "marker N3: diameter -4 mm is not in",
    ),
    "text-diameter": ('{"markers": [{"id": "a", "center_mm": [1, 2, 3], "diameter_mm": "4"}]}', "a number"),
    "bad-name": ('{"markers": [{"id": "a", "name": 5, "center_mm": [1, 2, 3], "diameter_mm": 4}]}', "text"),
    "duplicate": (
        '{"markers": [{"id": "a", "center_mm": [1, 2, 3], "diameter_mm": 4},'
        ' {"id": "a", "center_mm": [4, 5, 6], "diameter_mm": 4}]}',
        "duplicate marker id 'a'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_markers_files_are_refused_naming_the_file_and_the_reason(tmp_path, case):
    content, reason = BAD_FILES[case]
    path = tmp_path / f"{case}.json"
    if content == "<folder>":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(MarkerError, match=reason) as caught:
        read_markers(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_write_markers_refuses_duplicate_ids_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "markers.json"
    write_markers(path, [marker("a")])
    before = path.read_bytes()
    with pytest.raises(MarkerError, match="duplicate marker id 'a'"):
        write_markers(path, [marker("a"), marker("a", "N2")])
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["markers.json"]


# -- atomic writes ---------------------------------------------------------------------------------


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "f.txt"
    atomic_write_text(path, "one\n")
    atomic_write_text(path, "twø\r\n")
    assert path.read_bytes() == "twø\r\n".encode() and os.listdir(tmp_path) == ["f.txt"]
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"


def test_atomic_write_keeps_the_umask_permissions(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "f", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("failing", ["replace", "fsync", "write", "interrupt"])
def test_a_failed_atomic_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, failing):
    path = tmp_path / "markers.json"
    write_markers(path, [marker("a")])
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise KeyboardInterrupt if failing == "interrupt" else OSError(28, "No space left on device")

    if failing in ("replace", "interrupt"):
        monkeypatch.setattr(os, "replace", fail)
    elif failing == "fsync":  # after the data is written to the temporary file
        monkeypatch.setattr(os, "fsync", fail)
    else:
        real_fdopen = os.fdopen

        class HalfWriter:
            def __init__(self, handle):
                self.handle = handle

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.handle.close()

            def write(self, data):
                self.handle.write(data[: len(data) // 2])
                self.handle.flush()
                fail()

        monkeypatch.setattr(os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(KeyboardInterrupt if failing == "interrupt" else OSError):
        write_markers(path, [marker("a"), marker("b", "N2")])
    monkeypatch.undo()
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["markers.json"]
    assert read_markers(path) == [marker("a")]
