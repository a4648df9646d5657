"""Several processes on one library or one session: nobody rolls back a live import, nobody's saved
markers vanish, and what killed processes left behind is cleaned at start-up, never a live writer's.

Each test runs a second, real process (multiprocessing, spawn) that stops at a chosen moment of its
write and waits for the test to let it go on (or kills it)."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from core.nodule.markers import NoduleMarker
from core.reading import library_transfer
from core.reading.library import Library, LibraryError
from core.reading.session import Session, SessionBusy, SessionStore
from tests.core.reading.test_library import PATCH, fill, snapshot, study_nodules, study_volume

pytestmark = pytest.mark.skipif(os.name != "posix", reason="advisory locks need fcntl")
SPAWN = multiprocessing.get_context("spawn")
WAIT_S = 60
STUDY, SERIES = "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2"


@pytest.fixture
def library_and_export(tmp_path) -> tuple[Path, Path]:
    """A library of four studies, and an export that replaces two of its entries and adds four."""
    fill(Library(tmp_path / "labels"))
    source = Library(tmp_path / "source")
    fill(source, studies=1)
    for study in (1, 5, 6):
        for nodule in study_nodules(study, malignant=4.0, benign=2.0):
            source.add(study_volume(study), nodule, PATCH)
    library_transfer.export(source, tmp_path / "import.zip")
    return tmp_path / "labels", tmp_path / "import.zip"


# -- in the other process ------------------------------------------------------------------------------


def _import_pausing(root, export, stage, ready, go, outcome):
    """Import ``export``, stopping at ``stage`` ("staging": after two staged files; "commit": before the
    first entry moves in, the journal written) until ``go``; put the result or the error in ``outcome``."""
    real_replace, real_stage, staged = os.replace, library_transfer._write_synced, []

    def replace(src, dst):
        if stage == "commit" and str(dst).endswith(".npz") and not ready.is_set():
            ready.set()
            go.wait(WAIT_S)
        real_replace(src, dst)

    def write_synced(path, blob):
        real_stage(path, blob)
        staged.append(path)
        if stage == "staging" and len(staged) == 2:
            ready.set()
            go.wait(WAIT_S)

    os.replace, library_transfer._write_synced = replace, write_synced
    try:
        outcome.put(tuple(library_transfer.import_(Library(root), export)))
    except Exception as exc:  # reported to the test, which shows it
        outcome.put(f"{exc.__class__.__name__}: {exc}")


def _edit_series(root, tag, count, both_ready, outcome):
    """What a window does: claim the series it shows, then save its whole marker list at each change."""
    store = SessionStore(root)
    writer = store.claim(STUDY, SERIES)
    markers = list((store.load(STUDY, SERIES) or Session(STUDY, SERIES)).markers)
    both_ready.wait(WAIT_S)
    acknowledged, refused = [], 0
    for i in range(count):
        markers.append(NoduleMarker(f"{tag}{i}", f"{tag}{i}", (float(i), 0.0, 0.0), 5.0))
        try:
            store.save(Session(STUDY, SERIES, list(markers)))
        except SessionBusy:
            refused += 1
            break  # the app shows the banner and stops saving; one refusal is enough to check
        acknowledged.append(f"{tag}{i}")
    both_ready.wait(WAIT_S)  # both done before either lets its claim go
    outcome.put((tag, writer, acknowledged, refused))


def _save_pausing(root, ready, go):
    """Save a session, stopping with its temporary file written, just before it moves into place."""
    real_replace = os.replace

    def replace(src, dst):
        ready.set()
        go.wait(WAIT_S)
        real_replace(src, dst)

    os.replace = replace
    SessionStore(root).save(Session(STUDY, SERIES, [NoduleMarker("m1", "N1", (0.0, 0.0, 0.0), 5.0)]))


def _start(target, *args):
    process = SPAWN.Process(target=target, args=args, daemon=True)
    process.start()
    return process


def _stop(process) -> None:
    if process.is_alive():
        os.kill(process.pid, signal.SIGKILL)
    process.join(WAIT_S)


# -- the library -----------------------------------------------------------------------------------------


def test_opening_the_library_during_another_process_import_neither_rolls_it_back_nor_writes(
    library_and_export,
):
    root, export = library_and_export
    before = len(Library(root).entries())
    ready, go, outcome = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    importer = _start(_import_pausing, root, export, "commit", ready, go, outcome)
    try:
        assert ready.wait(WAIT_S), "the importing process never reached its commit"
        assert (root / "import.journal.json").is_file()
        other = Library(root)  # a second process opens the library: the live import is not a leftover
        assert (root / "import.journal.json").is_file() and list(other.folder.glob(".*.import.tmp"))
        impatient = Library(root, busy_wait_s=0.2)
        with pytest.raises(LibraryError, match="the library is busy") as caught:
            library_transfer.import_(impatient, export)
        assert str(caught.value).startswith(str(root))
        with pytest.raises(LibraryError, match="busy"):
            impatient.add(study_volume(9), study_nodules(9)[0], PATCH)
        with pytest.raises(LibraryError, match="busy"):
            impatient.remove(impatient.entries()[0].id)
        go.set()
        result = outcome.get(timeout=WAIT_S)
    finally:
        go.set()
        _stop(importer)
    assert result == (4, 2, 0), result  # the import went through: nothing of it was lost
    reopened = Library(root)
    assert len(reopened.entries()) == before + 4 and not (root / "import.journal.json").exists()
    assert library_transfer.import_(reopened, export) == (0, 0, 6)  # and the library takes writers again


def test_a_killed_import_is_rolled_back_and_its_files_removed_but_not_while_it_lives(library_and_export):
    root, export = library_and_export
    before = snapshot(root)
    ready, go, outcome = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    importer = _start(_import_pausing, root, export, "staging", ready, go, outcome)
    try:
        assert ready.wait(WAIT_S), "the importing process never staged its files"
        staged = sorted(p.name for p in (root / "entries").glob(".*.import.tmp"))
        assert len(staged) == 2
        Library(root)  # opened while the importer lives: its staged files stay
        assert sorted(p.name for p in (root / "entries").glob(".*.import.tmp")) == staged
    finally:
        _stop(importer)  # kill -9 in the middle of staging
    assert snapshot(root) != before  # the dead importer's files are still there...
    Library(root)
    assert snapshot(root) == before  # ...until the library is opened again


def test_leftovers_of_killed_adds_and_committed_imports_are_removed_at_start_up(library_and_export):
    root, _ = library_and_export
    before = snapshot(root)
    entries = root / "entries"
    for name in (".abc.npz.1234.deadbeef.tmp", ".abc.0011aabb.import.tmp", ".abc.0011aabb.backup"):
        (entries / name).write_bytes(b"left by a killed process")
    (root / ".import.journal.json.99.cafe.tmp").write_text("{")
    Library(root)
    assert snapshot(root) == before


# -- sessions ------------------------------------------------------------------------------------------


def test_two_processes_editing_one_series_lose_no_saved_update(tmp_path):
    """Before, both saved their own copy over the other's (193 of 400 updates vanished); now the
    second is refused, so every save that was acknowledged is in the file."""
    both_ready, outcome = SPAWN.Barrier(2), SPAWN.Queue()
    editors = [_start(_edit_series, tmp_path, tag, 200, both_ready, outcome) for tag in ("a", "b")]
    try:
        results = sorted(outcome.get(timeout=WAIT_S) for _ in editors)
    finally:
        for editor in editors:
            _stop(editor)
    saved = {m.id for m in SessionStore(tmp_path).load(STUDY, SERIES).markers}
    acknowledged = {marker for _, _, markers, _ in results for marker in markers}
    assert acknowledged <= saved, f"{len(acknowledged - saved)} acknowledged saves lost"
    assert sorted(writer for _, writer, _, _ in results) == [False, True]  # one writer, one read-only
    for _, writer, markers, refused in results:
        assert (len(markers), refused) == ((200, 0) if writer else (0, 1))
    assert SessionStore(tmp_path).claim(STUDY, SERIES)  # their claims ended with their processes


def test_a_live_session_writers_temporary_file_is_kept_and_a_dead_ones_removed(tmp_path):
    ready, go = SPAWN.Event(), SPAWN.Event()
    writer = _start(_save_pausing, tmp_path, ready, go)
    try:
        assert ready.wait(WAIT_S), "the writer never reached its rename"
        left = sorted(os.listdir(tmp_path))
        assert any(name.endswith(".tmp") for name in left), left
        SessionStore(tmp_path)  # another process starts while the writer is in the middle of its save
        assert sorted(os.listdir(tmp_path)) == left
    finally:
        _stop(writer)  # kill -9 just before the rename
    store = SessionStore(tmp_path)
    assert os.listdir(tmp_path) == [] and store.load(STUDY, SERIES) is None


# -- the lock itself -------------------------------------------------------------------------------------


def test_a_lock_is_held_once_waits_and_its_file_can_go(tmp_path):
    from core.util.filelock import FileLock

    first, second = FileLock(tmp_path / "x.lock"), FileLock(tmp_path / "x.lock")
    assert first.acquire() and first.acquire()  # taking it again is a no-op...
    assert not second.acquire() and not second.acquire(timeout=0.1)  # ...another holder waits in vain
    first.release(remove=True)
    assert not (tmp_path / "x.lock").exists()
    assert second.acquire() and (tmp_path / "x.lock").exists()
    second.release()
    assert first.acquire()


def test_without_fcntl_every_lock_is_granted_as_before(tmp_path, monkeypatch):
    import core.util.filelock

    monkeypatch.setattr(core.util.filelock, "fcntl", None)
    first, second = (
        core.util.filelock.FileLock(tmp_path / "x.lock"),
        core.util.filelock.FileLock(tmp_path / "x.lock"),
    )
    assert first.acquire() and second.acquire()
    first.release(remove=True)
    second.release()
    assert list(tmp_path.iterdir()) == []


def test_runs_in_one_folder_get_their_own_state_and_only_dead_ones_are_removed(tmp_path):
    from core.training.state import claim_run, remove_abandoned

    live, dead = claim_run(tmp_path, "run"), claim_run(tmp_path, "run")
    assert (live.state.name, dead.state.name) == ("run.state.safetensors", "run-2.state.safetensors")
    for files in (live, dead):
        files.state.write_bytes(b"state")
    dead.lock.release()  # its process died, in the middle of a save
    (tmp_path / ".run-2.state.safetensors.999.tmp").write_bytes(b"half")
    (tmp_path / ".run.state.safetensors.998.tmp").write_bytes(b"being written")
    resumed = claim_run(tmp_path, "run", continuing=True)
    assert resumed.state == dead.state  # the dead run's, never the live one's
    assert claim_run(tmp_path, "run", continuing=True) is None  # nothing else to continue
    resumed.lock.release()
    remove_abandoned(tmp_path, "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".run.lock",
        ".run.state.safetensors.998.tmp",  # the live run's save
        "run.state.safetensors",
    ]


def test_a_library_or_sessions_folder_that_cannot_be_locked_can_still_be_read(
    library_and_export, monkeypatch
):
    import core.util.filelock

    root, _ = library_and_export
    count = len(Library(root).entries())
    (root / "entries" / ".x.npz.1.ab.tmp").write_bytes(b"x")
    SessionStore(root.parent / "sessions").save(Session(STUDY, SERIES))
    (root.parent / "sessions" / ".x.json.1.ab.tmp").write_bytes(b"x")

    def read_only(self, timeout=0.0):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(core.util.filelock.FileLock, "acquire", read_only)
    assert len(Library(root).entries()) == count  # opened and read; nothing removed without the lock
    assert (root / "entries" / ".x.npz.1.ab.tmp").exists()
    assert SessionStore(root.parent / "sessions").load(STUDY, SERIES) is not None
    assert (root.parent / "sessions" / ".x.json.1.ab.tmp").exists()
