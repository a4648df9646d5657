"""``python main.py compare``: a written phantom follow-up compared from marker files or saved sessions;
bad input refused with one line before any work; a failed write loses nothing."""

from __future__ import annotations

import json

import pytest

from core.followup import compare as compare_module
from core.nodule.markers import NoduleMarker, read_markers, write_markers
from core.reading.session import Session, SessionStore
from main import main


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory):
    from core.phantom.followup import FollowUpOptions, write_follow_up
    from tests.core.phantom.test_followup import SMALL, four_nodules

    out = tmp_path_factory.mktemp("compare") / "fu"
    follow = FollowUpOptions(interval_days=400, current_slice_thickness=2.5)
    return write_follow_up(out, SMALL, follow, four_nodules())


def _args(fu, out, markers=True) -> list[str]:
    args = ["compare", str(fu / "prior"), str(fu / "current"), "--out", str(out)]
    if markers:
        args += [
            "--prior-markers",
            str(fu / "prior" / "markers.json"),
            "--markers",
            str(fu / "current" / "markers.json"),
        ]
    return args


def test_marker_files_give_the_truth_pairs_growth_and_the_exam(follow_up, tmp_path, capsys):
    out = tmp_path / "followup.json"
    assert main(_args(follow_up, out)) == 0
    captured = capsys.readouterr()
    truth = json.loads((follow_up / "ground_truth.json").read_text())
    data = json.loads(out.read_text())
    assert {(p["prior_id"], p["current_id"]) for p in data["pairs"]} == {
        (p["prior_id"], p["current_id"]) for p in truth["pairs"]
    }
    assert data["new"] == truth["new"] and data["resolved"] == truth["resolved"]
    assert data["interval_days"] == 400 and data["current"]["date"] == "2026-01-01"
    assert all(p["trend"] and p["lung_rads"]["rule"] for p in data["pairs"])
    assert data["exam"]["category"] in captured.out and "exam: Lung-RADS" in captured.out
    volume = data["repeatability"]["volume_percent"]
    assert f"measurement error: a change under {volume:g} % of the smaller volume" in captured.out
    assert "compare: loading the prior study" in captured.err and "Traceback" not in captured.err


def test_without_marker_files_or_sessions_nothing_is_done(follow_up, tmp_path, capsys):
    out = tmp_path / "followup.json"
    assert main(_args(follow_up, out, markers=False)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "no saved session with markers; give --prior-markers" in err[-1]
    assert not out.exists()


def _save_sessions(fu) -> None:
    store = SessionStore()
    for role in ("prior", "current"):
        own = json.loads((fu / role / "ground_truth.json").read_text())
        store.save(
            Session(own["study_uid"], own["series_uid"], markers=read_markers(fu / role / "markers.json"))
        )


def test_saved_sessions_give_the_markers_keep_the_reading_and_its_registration_is_reused(
    follow_up, tmp_path, capsys, monkeypatch
):
    _save_sessions(follow_up)
    out = tmp_path / "followup.json"
    assert main(_args(follow_up, out, markers=False)) == 0
    first = json.loads(out.read_text())
    err = capsys.readouterr().err
    assert "3 marker(s) from its saved session" in err and "saved with the current study's session" in err
    own = json.loads((follow_up / "current" / "ground_truth.json").read_text())
    assert SessionStore().load(own["study_uid"], own["series_uid"]).follow_up == first

    def refuse(*args, **kwargs):
        raise AssertionError("registered again")

    monkeypatch.setattr(compare_module, "register", refuse)
    assert main(_args(follow_up, out, markers=False)) == 0
    assert "registration saved with the current study's session is used" in capsys.readouterr().err
    assert json.loads(out.read_text())["pairs"] == first["pairs"]
    # the reader unpairs one pair in the viewer (saved with the reading): comparing again keeps it apart
    split = first["pairs"][0]
    store = SessionStore()
    session = store.load(own["study_uid"], own["series_uid"])
    session.follow_up = first | {
        "overrides": {"pairs": [], "unpaired": [[split["prior_id"], split["current_id"]]]}
    }
    store.save(session)
    assert main(_args(follow_up, out, markers=False)) == 0
    assert "the reader's 0 pairing(s) and 1 unpairing(s) kept" in capsys.readouterr().err
    again = json.loads(out.read_text())
    assert (split["prior_id"], split["current_id"]) not in {
        (p["prior_id"], p["current_id"]) for p in again["pairs"]
    }
    assert split["current_id"] in again["new"] and split["prior_id"] in again["resolved"]


def test_without_a_session_the_reading_is_only_in_the_file(follow_up, tmp_path, capsys):
    assert main(_args(follow_up, tmp_path / "followup.json")) == 0
    assert "not saved with a session" in capsys.readouterr().err
    own = json.loads((follow_up / "current" / "ground_truth.json").read_text())
    assert SessionStore().load(own["study_uid"], own["series_uid"]) is None


def test_a_marker_that_cannot_be_measured_is_noted_and_the_rest_compared(follow_up, tmp_path, capsys):
    markers = read_markers(follow_up / "current" / "markers.json")
    centre = markers[0].centre_mm
    air = NoduleMarker("air", "air", (centre[0], -94.0, centre[2]), 6.0)  # before the chest
    write_markers(tmp_path / "current.json", [*markers, air])
    out = tmp_path / "followup.json"
    args = _args(follow_up, out)
    args[args.index("--markers") + 1] = str(tmp_path / "current.json")
    assert main(args) == 0
    err = capsys.readouterr().err
    data = json.loads(out.read_text())
    assert "note: current marker air not measured:" in err and "air" in data["unmeasured"]["current"]
    assert len(data["pairs"]) == 2 and all("trend" in p for p in data["pairs"])


@pytest.mark.parametrize(
    "case, expected",
    [
        ("missing markers", "no such markers file"),
        ("no study", "prior-missing"),
        ("no folder", "does not exist (make it first)"),
        ("out is a folder", "is a folder"),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_written(follow_up, tmp_path, capsys, case, expected):
    out = tmp_path / "followup.json"
    args = _args(follow_up, out)
    if case == "missing markers":
        args[args.index("--markers") + 1] = str(tmp_path / "nope.json")
    elif case == "no study":
        args[1] = str(tmp_path / "prior-missing")
    elif case == "no folder":
        out = tmp_path / "nowhere" / "followup.json"
        args[args.index("--out") + 1] = str(out)
    else:
        out = tmp_path
        args[args.index("--out") + 1] = str(out)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and expected in err[-1] and "Traceback" not in "".join(err)
    assert not (tmp_path / "followup.json").exists()


def test_a_failed_write_keeps_the_previous_file_and_prints_the_comparison(
    follow_up, tmp_path, capsys, monkeypatch
):
    import core.util.atomic

    out = tmp_path / "followup.json"
    out.write_text("previous\n")

    def fail(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core.util.atomic, "atomic_write_text", fail)
    assert main(_args(follow_up, out)) == 1
    captured = capsys.readouterr()
    assert out.read_text() == "previous\n"
    assert "cannot be written (No space left on device)" in captured.err
    assert '"schema": "mtmr-reader/follow-up/1"' in captured.out
