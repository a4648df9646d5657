"""Advisory locks between processes: one writer at a time for a library, a session or a training run.

``fcntl.flock`` on a small lock file. The operating system drops the lock when its holder ends,
however it ends (``kill -9`` and power loss included), so a lock that can be taken means its last
holder is gone: whatever that holder left half-done (a journal, temporary files) may be rolled back or
removed. A lock is taken without waiting, or waiting up to a given time; it is never taken twice,
not even by two objects of one process. Where ``fcntl`` is missing (Windows) or the file system
refuses locks, every lock is granted at once, unprotected, as before there were any.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks here
    fcntl = None

_POLL_S = 0.05


class FileLock:
    """An exclusive lock on ``path`` (created when needed), held from ``acquire`` until ``release``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None  # -1: granted without a real lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting up to ``timeout`` seconds; False when another holder kept it."""
        if self._fd is not None:
            return True
        if fcntl is None:
            self._fd = -1
            return True
        deadline = time.monotonic() + timeout
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    return False
                time.sleep(_POLL_S)
                continue
            except OSError:  # a file system without locks: unprotected, as without fcntl
                os.close(fd)
                self._fd = -1
                return True
            if _same_file(fd, self.path):
                self._fd = fd
                return True
            os.close(fd)  # its holder removed the file as we opened it: lock the current one

    def release(self, remove: bool = False) -> None:
        """Let the lock go; ``remove`` deletes the lock file first (safe: ``acquire`` checks it)."""
        fd, self._fd = self._fd, None
        if fd is None or fd < 0:
            return
        if remove:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        os.close(fd)  # closing drops the lock

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, current = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (current.st_dev, current.st_ino)
