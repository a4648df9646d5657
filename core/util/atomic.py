"""Atomic file writes: a reader (or a crash) sees the old file or the new one, never half of one.

The data goes to a temporary file in the target's own folder (so the final rename never crosses a
file system), is flushed and fsynced, then moved over the target with ``os.replace``; the folder itself is
fsynced where the operating system allows it, so the rename survives a power cut too. On any
failure, including an interrupt, the temporary file is removed and the previous file is untouched.
A process killed outright (SIGKILL, power loss) may leave a ``.<name>.<pid>.<token>.tmp`` behind,
never a damaged target.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes, mode: int = 0o666) -> None:
    """Replace ``path`` with ``data`` atomically; its folder must exist. ``mode`` (less the umask) is set
    when the temporary file is made, so a secret written with 0o600 is never readable by others."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 lets the umask decide the permissions, as a plain open() would
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    """Replace ``path`` with ``text`` atomically (no newline translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def fsync_folder(folder: Path) -> None:
    """Make renames into ``folder`` durable (fsync the folder itself); skipped where the operating system
    cannot open a folder for this (Windows), and nothing is lost by skipping."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
