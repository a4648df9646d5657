"""The one progress printer of the long commands (batch, report, predict, phantom, train, evaluate,
lidc, finetune): everything goes to stderr, so stdout holds only the results.

``Progress.say(text)`` prints a line that stays (what the command is doing, a skipped item, a note).
``Progress.status(text)`` shows how far it is: on a terminal one line redrawn in place (at most five
times a second), otherwise a line of its own at most every ``every_s`` seconds; the last one
(``done=True``) and any with ``always=True`` are always shown. A ``say`` while a status line is drawn
on a terminal goes above it. ``bar(done, total)`` draws ``[####----]``.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

TTY_EVERY_S = 0.2


def bar(done: int, total: int, width: int = 24) -> str:
    """``[####----]``: ``done`` of ``total`` as ``width`` characters (full when ``total`` is 0)."""
    filled = round(width * done / total) if total else width
    return "[" + "#" * filled + "-" * (width - filled) + "]"


class Progress:
    """Lines and a status line on stderr (or ``stream``)."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s
        self.shown = ""  # the status line drawn in place on a terminal, "" when none
        self.last = float("-inf")  # when the last status was shown (time.monotonic)

    def say(self, text: str) -> None:
        """A line that stays, above the status line on a terminal."""
        if self.shown:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        if self.shown:
            self.stream.write(self.shown)
        self.stream.flush()

    def status(self, text: str, *, done: bool = False, always: bool = False) -> None:
        """How far the command is; shown at most every ``every_s`` seconds (a terminal: five times a
        second) unless ``done`` (the last status: it stays) or ``always``."""
        now = time.monotonic()
        if not (done or always) and now - self.last < (TTY_EVERY_S if self.tty else self.every_s):
            return
        self.last = now
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if done else ""))
            self.shown = "" if done else text
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        """Remove the status line from a terminal (when the command stops before its last status)."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = ""
