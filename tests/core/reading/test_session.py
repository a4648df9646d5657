"""Reading sessions: round trips, file names without identifiers, corrupt files moved aside, and
writes that survive failures and SIGKILL at any moment."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.nodule.labels import NoduleLabel
from core.nodule.markers import NoduleMarker
from core.reading.session import SCHEMA, Session, SessionCorrupt, SessionStore

REPO = Path(__file__).resolve().parents[3]
STUDY, SERIES = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"


def session(study=STUDY, series=SERIES, count=2) -> Session:
    markers = [NoduleMarker(f"m{i}", f"N{i + 1}", (10.0 * i, -20.5, 300.25), 6.0 + i) for i in range(count)]
    labels = {"m0": NoduleLabel(4.0, {"subtlety": 3.0, "spiculation": 2.0}, confirmed_at="2025-01-02T03:04Z")}
    view = {"slice": 41, "window": [-600, 1500], "layout": "1x3", "selected": "m0"}
    return Session(study, series, markers, labels if count else {}, view)


def files(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# -- round trips and file names --------------------------------------------------------------------


def test_save_and_load_round_trip(tmp_path):
    store = SessionStore(tmp_path / "sessions")
    original = session()
    path = store.save(original)
    assert path == store.path_for(STUDY, SERIES) and path.parent == tmp_path / "sessions"
    saved_at = dt.datetime.fromisoformat(original.saved_at)
    assert saved_at.utcoffset() == dt.timedelta(0)
    assert abs((dt.datetime.now(dt.timezone.utc) - saved_at).total_seconds()) < 60
    loaded = store.load(STUDY, SERIES)
    assert loaded == original and loaded is not original
    assert loaded.labels["m0"].malignancy == 4.0 and loaded.markers[1].centre_mm == (10.0, -20.5, 300.25)
    assert json.loads(path.read_text())["schema"] == SCHEMA == "mtmr-reader/session/1"
    assert Session.from_dict(original.to_dict()) == original


def test_a_session_without_anything_round_trips(tmp_path):
    store = SessionStore(tmp_path)
    empty = Session(STUDY, SERIES, [], {}, {})
    store.save(empty)
    assert store.load(STUDY, SERIES) == empty


def test_default_folder_is_the_user_sessions_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MTMR_READER_HOME", str(tmp_path / "home"))
    store = SessionStore()
    assert store.root == tmp_path / "home" / "data" / "sessions"
    saved = session()
    store.save(saved)
    assert store.load(STUDY, SERIES) == saved and (store.root / store.path_for(STUDY, SERIES).name).is_file()


def test_file_names_are_hashes_and_no_patient_data_is_stored(tmp_path):
    store = SessionStore(tmp_path)
    name = store.path_for(STUDY, SERIES).name
    assert name.endswith(".json") and "1.2.826" not in name and "498" not in name
    assert int(name.removesuffix(".json"), 16) >= 0
    assert store.path_for(STUDY, SERIES) == SessionStore(tmp_path).path_for(STUDY, SERIES)
    assert store.path_for(STUDY, SERIES) != store.path_for(SERIES, STUDY)
    assert store.path_for(STUDY, SERIES) != store.path_for(STUDY, SERIES + "1")
    store.save(session())
    data = json.loads(store.path_for(STUDY, SERIES).read_text())
    assert set(data) == {
        "schema", "study_uid", "series_uid", "saved_at", "markers", "labels", "view", "results", "source",
        "masks", "follow_up", "measurements",
    }  # fmt: skip
    assert data["source"] == ""  # the local path is kept only when the app gives it (to reopen the study)
    assert "patient" not in json.dumps(data).lower()


def test_load_without_a_session_is_none_and_delete_removes_it(tmp_path):
    store = SessionStore(tmp_path)
    assert store.load(STUDY, SERIES) is None and store.delete(STUDY, SERIES) is False
    store.save(session())
    assert store.delete(STUDY, SERIES) is True
    assert store.load(STUDY, SERIES) is None and files(tmp_path) == []


def test_summaries_list_sessions_newest_first_and_skip_bad_files(tmp_path):
    store = SessionStore(tmp_path)
    assert SessionStore(tmp_path / "nowhere").summaries() == []
    store.save(session(series="1.1", count=3))
    time.sleep(0.01)
    store.save(session(series="1.2", count=0))
    corrupt = tmp_path / ("c" * 32 + ".json")
    corrupt.write_text("{truncated")
    (tmp_path / ".x.json.123.ab.tmp").write_text("{}")
    (tmp_path / "notes.txt").write_text("hello")
    summaries = store.summaries()
    counts = [(s.series_uid, s.marker_count, s.labelled_count) for s in summaries]
    assert counts == [("1.2", 0, 0), ("1.1", 3, 1)]
    assert summaries[0].study_uid == STUDY and summaries[0].saved_at > summaries[1].saved_at
    assert summaries[1].path == store.path_for(STUDY, "1.1")
    assert corrupt.read_text() == "{truncated"  # listing never moves or changes a file


def test_labels_of_markers_not_in_the_session_are_kept_but_not_counted(tmp_path):
    store = SessionStore(tmp_path)
    kept = session(count=1)
    kept.labels["gone"] = NoduleLabel(2.0)
    store.save(kept)
    assert store.load(STUDY, SERIES).labels["gone"].malignancy == 2.0
    assert store.summaries()[0].labelled_count == 1


# -- corrupt files ---------------------------------------------------------------------------------


def good_document() -> dict:
    document = session().to_dict()
    document["saved_at"] = "2025-01-01T00:00:00.000+00:00"
    return document


def edited(**changes) -> bytes:
    document = good_document()
    for key, value in changes.items():
        if value is None:
            del document[key]
        else:
            document[key] = value
    return json.dumps(document).encode()


MARKER = {"id": "a", "center_mm": [1, 2, 3], "diameter_mm": 5}
CORRUPT = {
    "truncated": (json.dumps(good_document()).encode()[:-40], "invalid JSON"),
    "empty": (b"", "the file is empty"),
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    "array": (b"[1, 2]", "not a session record"),
    "no-schema": (edited(schema=None), "schema None"),
    "newer-schema": (edited(schema="mtmr-reader/session/2"), "schema 'mtmr-reader/session/2'"),
    "no-study": (edited(study_uid=None), "no study_uid"),
    "bad-markers": (edited(markers={"a": 1}), "markers is not a list"),
    "bad-marker": (edited(markers=[{"id": "a", "center_mm": [1, 2]}]), "marker a"),
    "duplicate": (edited(markers=[MARKER, MARKER]), "already in use"),
    "bad-labels": (edited(labels=[]), "labels is not an object"),
    "bad-label": (edited(labels={"m0": {"malignancy": 9}}), "label of marker m0: malignancy 9.0"),
    "bad-view": (edited(view=[1]), "view is not an object"),
    "nan": (json.dumps(good_document()).replace('"slice": 41', '"slice": NaN').encode(), "NaN"),
    "other-series": (edited(series_uid="9.9.9"), "belongs to another series"),
    # hand-edited or corrupted nesting: json.loads itself raised RecursionError on the first one
    "deep-json": (
        json.dumps(good_document())
        .replace('"slice": 41', '"slice": ' + "[" * 100_000 + "]" * 100_000)
        .encode(),
        "nested too deeply",
    ),
    "deep-view": (edited(view={"a": json.loads("[" * 40 + "]" * 40)}), "view is nested more than"),
    "deep-results": (edited(results={"m0": {"x": json.loads("[" * 40 + "]" * 40)}}), "results are nested"),
}


def test_a_deeply_nested_session_breaks_neither_the_worklist_nor_batch(tmp_path):
    """summaries() (the worklist's and batch's list) skips it; load() sets it aside as .corrupt-*."""
    store = SessionStore(tmp_path)
    store.save(session(study="1.2.3", series="4.5.6"))
    path = store.path_for(STUDY, SERIES)
    path.write_bytes(CORRUPT["deep-json"][0])
    assert [s.series_uid for s in store.summaries()] == ["4.5.6"]
    with pytest.raises(SessionCorrupt, match="nested too deeply") as caught:
        store.load(STUDY, SERIES)
    assert caught.value.aside.name.startswith(f"{path.name}.corrupt-") and not path.exists()


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_a_corrupt_session_is_moved_aside_with_its_bytes_and_reported(tmp_path, case):
    content, reason = CORRUPT[case]
    store = SessionStore(tmp_path)
    path = store.path_for(STUDY, SERIES)
    path.write_bytes(content)
    with pytest.raises(SessionCorrupt, match=reason) as caught:
        store.load(STUDY, SERIES)
    error = caught.value
    assert error.path == path and str(error).startswith(f"{path}: ") and error.aside.name in str(error)
    assert error.aside.parent == tmp_path and error.aside.name.startswith(f"{path.name}.corrupt-")
    stamp = error.aside.name.removeprefix(f"{path.name}.corrupt-")
    assert dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    assert error.aside.read_bytes() == content and not path.exists()
    assert store.load(STUDY, SERIES) is None  # the reader starts afresh...
    fresh = session()
    store.save(fresh)
    assert store.load(STUDY, SERIES) == fresh
    assert error.aside.read_bytes() == content  # ...and the bad file is still there to recover


def test_an_unreadable_session_is_moved_aside(tmp_path):
    store = SessionStore(tmp_path)
    path = store.path_for(STUDY, SERIES)
    path.mkdir()  # reading fails with an OSError
    with pytest.raises(SessionCorrupt, match="cannot be read") as caught:
        store.load(STUDY, SERIES)
    assert caught.value.aside.is_dir() and not path.exists()


def test_two_corrupt_files_in_one_second_get_their_own_aside_names(tmp_path):
    store = SessionStore(tmp_path)
    path = store.path_for(STUDY, SERIES)
    asides = []
    for content in (b"first", b"second", b"third"):
        path.write_bytes(content)
        with pytest.raises(SessionCorrupt) as caught:
            store.load(STUDY, SERIES)
        asides.append(caught.value.aside)
    assert len(set(asides)) == 3 and [a.read_bytes() for a in asides] == [b"first", b"second", b"third"]


def test_a_corrupt_session_that_cannot_be_moved_is_left_in_place_and_reported(tmp_path, monkeypatch):
    store = SessionStore(tmp_path)
    path = store.path_for(STUDY, SERIES)
    path.write_bytes(b"{")

    def refuse(*args):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(SessionCorrupt, match="could not be moved aside") as caught:
        store.load(STUDY, SERIES)
    assert caught.value.aside is None and path.read_bytes() == b"{"


# -- failed and interrupted writes -----------------------------------------------------------------


@pytest.mark.parametrize("failing", ["replace", "fsync"])
def test_a_failed_save_keeps_the_previous_session_and_no_temporary_file(tmp_path, monkeypatch, failing):
    store = SessionStore(tmp_path)
    store.save(session(count=1))
    before = store.path_for(STUDY, SERIES).read_bytes()
    newer = session(count=3)

    def fail(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, failing, fail)
    with pytest.raises(OSError, match="No space"):
        store.save(newer)
    monkeypatch.undo()
    assert newer.saved_at == ""
    assert store.path_for(STUDY, SERIES).read_bytes() == before and len(files(tmp_path)) == 1
    assert len(store.load(STUDY, SERIES).markers) == 1


def test_a_view_that_is_not_json_is_refused_before_any_file_is_touched(tmp_path):
    store = SessionStore(tmp_path)
    store.save(session())
    before = store.path_for(STUDY, SERIES).read_bytes()
    for view in ({"thing": object()}, {"level": float("nan")}):
        bad = session()
        bad.view = view
        with pytest.raises((TypeError, ValueError)):
            store.save(bad)
    assert store.path_for(STUDY, SERIES).read_bytes() == before and len(files(tmp_path)) == 1


WRITER = """
import sys
sys.path.insert(0, sys.argv[2])
from core.nodule.labels import NoduleLabel
from core.nodule.markers import NoduleMarker
from core.reading.session import Session, SessionStore

store = SessionStore(sys.argv[1])
previous = store.load("1.2.3", "4.5.6")
generation = previous.view["generation"] + 1 if previous else 0
while True:
    n = 1 + generation % 9
    markers = [NoduleMarker(f"m{i}", f"N{i + 1}", (i, -i, 2.5 * i), 5.0) for i in range(n)]
    labels = {m.id: NoduleLabel(1 + generation % 5) for m in markers[: generation % 4]}
    pad = "x" * (100_000 * (generation % 4))  # files from a few hundred bytes to 300 kB
    view = {"generation": generation, "n": n, "labelled": len(labels), "pad": pad}
    store.save(Session("1.2.3", "4.5.6", markers, labels, view))
    if previous is not False:
        print(generation, flush=True)  # the first save is done
        previous = False
    generation += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sessions_survive_sigkill_at_any_moment(tmp_path):
    """A process saving in a tight loop, killed at random moments: every load is a whole session."""
    store = SessionStore(tmp_path)
    rng = random.Random(1234)
    last, kills = -1, 6
    for _ in range(kills):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(REPO)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert writer.stdout.readline(), writer.stderr.read()  # its first save is done
            time.sleep(rng.uniform(0.0, 0.25))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
            writer.stdout.close()
            writer.stderr.close()
        assert writer.returncode == -signal.SIGKILL
        loaded = store.load("1.2.3", "4.5.6")  # raises SessionCorrupt on a half-written file
        view, generation = loaded.view, loaded.view["generation"]
        assert generation > last and len(loaded.markers) == view["n"] == 1 + generation % 9
        assert len(loaded.labels) == view["labelled"] and len(view["pad"]) == 100_000 * (generation % 4)
        last = generation
    left = [name for name in files(tmp_path) if name != store.path_for("1.2.3", "4.5.6").name]
    assert all(name.startswith(".") and name.endswith((".tmp", ".lock")) for name in left), (
        left
    )  # no .corrupt-*
    assert last >= kills
    SessionStore(tmp_path)  # the next start-up removes what the killed writer left behind
    assert files(tmp_path) == [store.path_for("1.2.3", "4.5.6").name]


def test_results_and_source_round_trip_and_bad_ones_are_refused(tmp_path):
    store = SessionStore(tmp_path)
    original = session()
    original.results = {"m1": {"malignancy_probability": 0.7}}
    original.source = "/data/study"
    store.save(original)
    loaded = store.load(STUDY, SERIES)
    assert loaded.results == original.results and loaded.source == "/data/study"
    for bad in ({"results": []}, {"results": {"m1": 3}}, {"source": 5}):
        data = original.to_dict() | bad
        with pytest.raises(ValueError):
            Session.from_dict(data)


def _follow_up() -> dict:
    import datetime as dt

    import numpy as np

    from core.followup.compare import FollowUp, StudyInfo
    from core.followup.register import Registration

    day = dt.date(2026, 1, 1)
    return FollowUp(
        StudyInfo("1.2.3", "1.2.3.1", day.replace(year=2025)), StudyInfo(STUDY, SERIES, day),
        Registration(np.eye(4), 0.5, 2.0), (), (), ("n1",), {}, "1", "", "continue annual screening",
        day.replace(year=2027),
    ).to_dict()  # fmt: skip


def test_a_follow_up_round_trips_and_a_damaged_one_is_refused(tmp_path):
    store = SessionStore(tmp_path)
    original = session()
    original.follow_up = _follow_up()
    store.save(original)
    assert store.load(STUDY, SERIES).follow_up == original.follow_up
    damaged = _follow_up()
    damaged["registration"]["current_to_prior"] = [[0.0] * 4] * 4
    for bad in ({"follow_up": []}, {"follow_up": {"schema": "other"}}, {"follow_up": damaged}):
        with pytest.raises(ValueError, match="follow_up"):
            Session.from_dict(original.to_dict() | bad)
