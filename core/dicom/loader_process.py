"""Catalogue and load studies in a process of their own, the pixels handed back in shared memory.

A loader thread in the window's process shares its interpreter lock and its memory-map lock with
the window: while a study loaded beside it, the window thread waited for them, and the last UI
stalls over 16 ms (issue 15) were those waits, not the window's own work. Here one warm process
(started once, reused; an interpreter and its imports cost ~0.5 s) runs the loader, its volume
allocated straight into a file of ``/dev/shm`` that the caller maps read-only and unlinks: no copy
of the pixels and no pickle of them. A load whose process dies (a decoder crash, the kernel's OOM
killer) becomes a ``StudyLoadError``, and the next load starts a fresh process.

Linux only (``/dev/shm``); elsewhere, or with ``MTMR_LOADER_PROCESS=0``, ``run_isolated`` runs the
function in the caller's thread as before. Nothing here imports Qt.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import mmap
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

import numpy as np

from core.dicom.errors import StudyLoadError
from core.dicom.pixels import populate
from core.util.cancellation import Cancelled
from core.volume import CTVolume

SHM_DIR = Path("/dev/shm")
PREFIX = "mtmr-load-"  # + the caller's pid: a crashed caller's leftovers are found by it
POLL_S = 0.02
NICE = 5  # as the window's background jobs (app.workers): the window thread goes first

_lock = threading.Lock()  # one load at a time, whichever window asks
_child: subprocess.Popen | None = None
_ids = itertools.count(1)


class SharedMemoryFull(StudyLoadError):
    """``/dev/shm`` cannot hold the volume: the caller loads it in place instead."""


def available() -> bool:
    return (
        os.environ.get("MTMR_LOADER_PROCESS", "1") != "0"
        and SHM_DIR.is_dir()
        and os.access(SHM_DIR, os.W_OK)
        and hasattr(os, "posix_fallocate")
    )


def run_isolated(function: Callable, *args, progress=None, cancelled=None, **kwargs):
    """``function(*args, **kwargs)`` (a module-level function; given ``progress`` and ``cancelled``
    where it takes them) in the loader process; a ``CTVolume`` in the result comes back with its
    pixels mapped from shared memory. Its exceptions are raised here; ``Cancelled`` when
    ``cancelled()`` turned true meanwhile."""
    if not available():
        return _call(function, args, kwargs, progress, cancelled)
    with _lock:
        task = next(_ids)
        child = _start()
        try:
            _send(child.stdin, ("run", task, os.getcwd(), function, args, kwargs))  # relative paths
            asked = False
            while True:
                if not asked and cancelled is not None and cancelled():  # also while progress flows
                    if not _takes(function, "cancelled"):  # (a catalogue): it would hold the next load
                        _stop()
                        raise Cancelled()
                    _send(child.stdin, ("cancel", task))
                    asked = True
                if not select.select([child.stdout], [], [], POLL_S)[0]:
                    continue
                kind, of, *value = _receive(child.stdout)
                if of != task:
                    continue  # a message of a task whose caller gave up (none today)
                if kind == "progress":
                    if progress is not None:
                        progress(*value)
                    continue
                if kind == "error":
                    failure = value[0]
                    break
                return _unship(value[0])
        except (OSError, EOFError, pickle.UnpicklingError) as exc:  # the pipe, not the job
            _stop()
            raise StudyLoadError(_named(args), "the loader process ended unexpectedly") from exc
    if not isinstance(failure, SharedMemoryFull):
        raise failure
    return _call(function, args, kwargs, progress, cancelled)  # a small /dev/shm (a container's 64 MB)


def warm_up() -> None:
    """Start the loader process now (its interpreter and imports), so the first study loads at once."""
    if available():
        with _lock:
            _start()


def clean_leftovers() -> int:
    """Remove the shared pixels of callers that died before mapping them (never a live one's)."""
    removed = 0
    for path in SHM_DIR.glob(f"{PREFIX}*") if SHM_DIR.is_dir() else ():
        owner = path.name[len(PREFIX) :].split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            with contextlib.suppress(OSError):
                path.unlink()
                removed += 1
    return removed


# -- the caller's side ---------------------------------------------------------------------------
def _start() -> subprocess.Popen:
    global _child
    if _child is None or _child.poll() is not None:
        clean_leftovers()
        root = Path(__file__).resolve().parents[2]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
        }
        _child = subprocess.Popen(
            [sys.executable, "-m", "core.dicom.loader_process", str(os.getpid())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,  # unbuffered: what select() says is ready is all there is to read
            env=env,
            cwd=root,
        )
    return _child


def _stop() -> None:
    """End the loader process, and remove what it had allocated (a volume half loaded)."""
    global _child
    if _child is not None:
        with contextlib.suppress(OSError):
            _child.kill()
        with contextlib.suppress(Exception):
            _child.wait(timeout=5)
        for path in SHM_DIR.glob(f"{PREFIX}{os.getpid()}-{_child.pid}-*"):
            with contextlib.suppress(OSError):
                path.unlink()
        _child = None
    clean_leftovers()


def _send(stream, message) -> None:
    body = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    data = memoryview(struct.pack("<Q", len(body)) + body)
    while data:  # an unbuffered pipe may take part of it per write
        data = data[stream.write(data) :]
    stream.flush()


def _receive(stream):
    """One message of the other side (ours: the loader is this module, run by this process)."""
    size = struct.unpack("<Q", _read_exactly(stream, 8))[0]
    return pickle.loads(_read_exactly(stream, size))


def _read_exactly(stream, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the other side closed its end")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _unship(value):
    if isinstance(value, _Shipped):
        return value.attach()
    if isinstance(value, tuple):
        return tuple(_unship(v) for v in value)
    return value


def _named(args) -> Path | None:
    first = args[0] if args else None
    if isinstance(first, (list, tuple)) and first:
        first = Path(first[0]).parent
    return Path(first) if isinstance(first, (str, os.PathLike)) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Shipped:
    """A ``CTVolume`` whose pixels wait in ``path`` (shared memory), the rest pickled as is."""

    def __init__(self, volume: CTVolume, path: Path) -> None:
        self.path = str(path)
        self.shape, self.dtype = volume.array.shape, volume.array.dtype.str
        self.rest = {f.name: getattr(volume, f.name) for f in fields(volume) if f.name != "array"}

    def attach(self) -> CTVolume:
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                nbytes = int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize
                pixels = mmap.mmap(fd, nbytes, prot=mmap.PROT_READ) if nbytes else b""
            finally:
                os.close(fd)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # the mapping stays until the volume is freed
        array = np.frombuffer(pixels, dtype=self.dtype).reshape(self.shape)
        # mapped here, off the window thread: the first sagittal slice faulted in ~40 000 pages
        # one by one in the window's turn (16-18 ms)
        populate(array, write=False)
        return CTVolume(array=array, **self.rest)


# -- the loader process's side -------------------------------------------------------------------
_made: dict[int, Path] = {}  # id(mmap) -> its file, for the volumes allocated by this task
_owner = 0
_cancelled: set[int] = set()


def main(owner: int) -> None:
    """The loader process: run the tasks read from stdin one by one, answering on stdout; a reader
    thread takes the cancellations meanwhile. Ends when the caller closes stdin (or dies)."""
    global _owner
    from core.dicom import pixels

    _owner = owner
    with contextlib.suppress(OSError):
        os.nice(NICE)
    pixels.use_allocator(_shared_volume)
    tasks: queue.Queue = queue.Queue()
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print goes to stderr, never into the answers

    def read() -> None:
        try:
            while True:
                message = _receive(sys.stdin.buffer)
                if message[0] == "cancel":
                    _cancelled.add(message[1])
                else:
                    tasks.put(message)
        except (EOFError, OSError):
            tasks.put(None)

    threading.Thread(target=read, daemon=True).start()
    while (message := tasks.get()) is not None:
        _, task, folder, function, args, kwargs = message
        with contextlib.suppress(OSError):
            os.chdir(folder)  # the caller's: a relative path means the same there
        _send(out, _task(task, function, args, kwargs, out))


def _task(task: int, function: Callable, args, kwargs, out):
    _made.clear()

    def progress(done: int, total: int = 0) -> None:
        _send(out, ("progress", task, done, total))

    try:
        result = _call(function, args, kwargs, progress, lambda: task in _cancelled)
        return ("done", task, _ship(result))
    except Exception as exc:  # raised again in the caller (StudyLoadError pickles its path and reason)
        try:
            pickle.loads(pickle.dumps(exc))  # one the caller cannot rebuild is said in words
        except Exception:
            exc = StudyLoadError(_named(args), f"the loader failed: {type(exc).__name__}: {exc}")
        return ("error", task, exc)
    finally:
        _cancelled.discard(task)
        for path in _made.values():  # what was shipped is the caller's now; the rest goes
            with contextlib.suppress(OSError):
                os.unlink(path)
        _made.clear()


def _call(function, args, kwargs, progress, cancelled):
    if _takes(function, "progress") and progress is not None:
        kwargs = {**kwargs, "progress": progress}
    if _takes(function, "cancelled") and cancelled is not None:
        kwargs = {**kwargs, "cancelled": cancelled}
    return function(*args, **kwargs)


def _takes(function: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(function).parameters
    except (TypeError, ValueError):  # a builtin without one
        return False


def _ship(value):
    if isinstance(value, CTVolume):
        base = value.array
        while base is not None and not isinstance(base, mmap.mmap):
            base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
        path = _made.pop(id(base), None) if base is not None else None
        if path is None:  # made another way (resampled, a NIfTI): copied into shared memory once
            copy = _shared_volume(value.array.shape)
            copy[...] = value.array
            rest = {f.name: getattr(value, f.name) for f in fields(value) if f.name != "array"}
            return _ship(CTVolume(array=copy, **rest))
        return _Shipped(value, path)
    if isinstance(value, tuple):
        return tuple(_ship(v) for v in value)
    return value


def _shared_volume(shape: tuple[int, ...]) -> np.ndarray:
    """An int16 array in a new file of shared memory, its space reserved (a full ``/dev/shm`` is
    an error here, not a SIGBUS at the first touch)."""
    nbytes = int(np.prod(shape)) * 2
    path = SHM_DIR / f"{PREFIX}{_owner}-{os.getpid()}-{uuid.uuid4().hex}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            if nbytes:
                os.posix_fallocate(fd, 0, nbytes)
        except OSError as exc:
            os.unlink(path)
            raise SharedMemoryFull(SHM_DIR, f"no room for the volume ({exc.strerror})") from exc
        buffer = mmap.mmap(fd, max(nbytes, 1))
    finally:
        os.close(fd)
    _made[id(buffer)] = path
    array = np.frombuffer(buffer, dtype=np.int16, count=int(np.prod(shape))).reshape(shape)
    populate(array)
    return array


if __name__ == "__main__":  # run by its real name: what it sends back pickles as this module's
    from core.dicom import loader_process

    loader_process.main(int(sys.argv[1]))
