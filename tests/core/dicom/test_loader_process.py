"""The loader's own process (issue 15): a volume loaded there is the one loaded in place, its pixels
mapped read-only from shared memory and nothing left behind; errors, cancelling and a loader that
dies reach the caller as the loader's exceptions; a dead caller's leftovers are cleaned."""

from __future__ import annotations

import mmap
import os
import threading
import time

import numpy as np
import pytest

from core.dicom import loader_process
from core.dicom.catalogue import catalogue
from core.dicom.errors import NotDicomError, StudyLoadError
from core.dicom.series import LoadCancelled, load_series
from tests.dicom_factory import write_series

pytestmark = pytest.mark.skipif(not loader_process.available(), reason="no /dev/shm here")


def _ours() -> set[str]:
    return {p.name for p in loader_process.SHM_DIR.glob(f"{loader_process.PREFIX}{os.getpid()}-*")}


def _mapped(array: np.ndarray) -> bool:
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
    return base is not None


def test_a_volume_loaded_in_the_loader_process_is_the_one_loaded_in_place(tmp_path):
    files = write_series(tmp_path / "s", 12)
    found = loader_process.run_isolated(catalogue, tmp_path / "s")
    steps = []
    volume = loader_process.run_isolated(
        load_series, found.find_series().files, progress=lambda done, total: steps.append((done, total))
    )
    here = load_series(files)
    assert loader_process.run_isolated(os.getpid) != os.getpid()  # it ran in another process
    assert np.array_equal(volume.array, here.array) and np.allclose(volume.affine, here.affine)
    assert volume.metadata == here.metadata and volume.warnings == here.warnings
    assert _mapped(volume.array) and not volume.array.flags.writeable  # shared, not copied
    assert steps and steps[-1] == (12, 12)
    assert _ours() == set()  # unlinked once mapped: nothing stays in /dev/shm


def test_the_loaders_errors_name_the_file_and_the_reason_as_in_place(tmp_path):
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"not dicom at all")
    with pytest.raises(NotDicomError) as caught:
        loader_process.run_isolated(load_series, [bad])
    assert caught.value.path == bad and "bad.dcm" in str(caught.value)
    assert _ours() == set()


def test_a_cancelled_load_stops_and_leaves_nothing(tmp_path):
    files = write_series(tmp_path / "s", 40)
    with pytest.raises(LoadCancelled):
        loader_process.run_isolated(load_series, files, cancelled=lambda: True)
    assert _ours() == set()
    assert loader_process.run_isolated(load_series, files).shape[0] == 40  # the process goes on


def test_a_loader_that_dies_is_an_error_naming_the_study_and_the_next_load_gets_a_fresh_one(tmp_path):
    files = write_series(tmp_path / "s", 6)
    loader_process.warm_up()
    child = loader_process._child
    threading.Timer(0.5, child.kill).start()  # as a decoder crash or the OOM killer would
    with pytest.raises(StudyLoadError, match="loader process ended unexpectedly") as caught:
        loader_process.run_isolated(time.sleep, 30)
    assert not isinstance(caught.value, NotDicomError)
    assert loader_process.run_isolated(load_series, files).shape[0] == 6
    assert loader_process._child is not child


def test_leftovers_of_a_dead_caller_are_removed_and_a_live_ones_kept():
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(gone.stdout)
    dead = loader_process.SHM_DIR / f"{loader_process.PREFIX}{dead_pid}-1-test"
    live = loader_process.SHM_DIR / f"{loader_process.PREFIX}{os.getpid()}-1-test"
    for path in (dead, live):
        path.write_bytes(b"pixels")
    try:
        assert loader_process.clean_leftovers() >= 1
        assert not dead.exists() and live.exists()
    finally:
        for path in (dead, live):
            path.unlink(missing_ok=True)


def test_without_the_loader_process_the_function_runs_in_place(monkeypatch):
    monkeypatch.setenv("MTMR_LOADER_PROCESS", "0")
    assert loader_process.run_isolated(os.getpid) == os.getpid()


def test_cancelling_a_job_that_cannot_stop_by_itself_ends_its_process_at_once():
    from core.util.cancellation import Cancelled

    loader_process.warm_up()
    child, start = loader_process._child, time.monotonic()
    with pytest.raises(Cancelled):  # time.sleep takes no ``cancelled`` (nor does a catalogue)
        loader_process.run_isolated(time.sleep, 30, cancelled=lambda: time.monotonic() - start > 0.3)
    assert time.monotonic() - start < 10 and child.wait(timeout=5) is not None
    assert loader_process.run_isolated(os.getpid) != os.getpid()  # a fresh one for the next


def test_a_relative_path_means_what_it_means_to_the_caller(tmp_path, monkeypatch):
    write_series(tmp_path / "s", 3)
    loader_process.warm_up()  # started elsewhere, before the caller moved
    monkeypatch.chdir(tmp_path)
    assert loader_process.run_isolated(catalogue, "s").find_series().files


def needs_room(caller: int) -> str:
    """Run by the loader process in the test below: as a volume too big for /dev/shm would."""
    if os.getpid() != caller:
        raise loader_process.SharedMemoryFull(loader_process.SHM_DIR, "no room for the volume")
    return "loaded in place"


def raises_os_error() -> None:
    raise FileNotFoundError(2, "No such file", "gone.dcm")


def test_a_full_dev_shm_loads_in_place_and_a_jobs_own_os_error_is_its_own(monkeypatch):
    assert loader_process.run_isolated(needs_room, os.getpid()) == "loaded in place"
    child = loader_process._child
    with pytest.raises(FileNotFoundError):  # the job's error, not "the loader process ended"
        loader_process.run_isolated(raises_os_error)
    assert loader_process._child is child and child.poll() is None


def test_no_room_in_dev_shm_is_said_before_the_volume_is_touched(monkeypatch):
    def full(fd, offset, size):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    made = f"{loader_process.PREFIX}{loader_process._owner}-{os.getpid()}-*"
    with pytest.raises(loader_process.SharedMemoryFull, match="No space left"):
        loader_process._shared_volume((4, 8, 8))
    assert list(loader_process.SHM_DIR.glob(made)) == []  # its file removed


class _Unrebuildable(Exception):
    def __init__(self, path, reason):  # pickles its message only: cannot be built again from it
        super().__init__(f"{path}: {reason}")


def raises_unrebuildable() -> None:
    raise _Unrebuildable("scan.dcm", "odd")


def test_an_error_the_caller_could_not_rebuild_comes_back_in_words():
    with pytest.raises(StudyLoadError, match=r"_Unrebuildable: scan\.dcm: odd"):
        loader_process.run_isolated(raises_unrebuildable)


def allocate_then_wait() -> None:
    """Run by the loader process below: a volume half loaded when its load is stopped."""
    from core.dicom import pixels

    pixels.allocate_volume((4, 64, 64))
    time.sleep(30)


def test_a_loader_ended_mid_load_leaves_nothing_in_dev_shm():
    from core.util.cancellation import Cancelled

    loader_process.warm_up()
    child, start = loader_process._child, time.monotonic()
    with pytest.raises(Cancelled):
        loader_process.run_isolated(allocate_then_wait, cancelled=lambda: time.monotonic() - start > 1.0)
    assert list(loader_process.SHM_DIR.glob(f"{loader_process.PREFIX}{os.getpid()}-{child.pid}-*")) == []
