"""Drives a training generator (``core.reading.finetune.run.run_finetune`` events) off the GUI thread.

Pause holds the loop between steps (the generator is simply not advanced); cancel makes the engine's
``cancelled`` callback true, so it raises ``TrainingCancelled`` at the next step and nothing is written
but the last complete epoch's resumable state. Every event reaches the GUI through a queued signal;
an exception becomes ``failed`` with the reason, never a crash.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from PySide6.QtCore import QThread, Signal

from app.workers import yield_to_window_thread


class TrainingWorker(QThread):
    event = Signal(object)  # each event dict of the generator, in order
    failed = Signal(str)
    cancelled = Signal()

    def __init__(self, make: Callable[[Callable[[], bool]], Iterator[dict]]) -> None:
        """``make(cancelled)`` returns the event generator."""
        super().__init__()
        self.make = make
        self._cancel = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()  # a paused run must wake up to stop

    def pause(self, paused: bool) -> None:
        if paused:
            self._running.clear()
        else:
            self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def run(self) -> None:
        from core.util.cancellation import Cancelled

        yield_to_window_thread()
        try:
            for event in self.make(self._cancel.is_set):
                self.event.emit(event)
                self._running.wait()
                if self._cancel.is_set() and event.get("event") != "finished":
                    raise Cancelled()
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # reported to the reader as a message
            self.failed.emit(f"{type(exc).__name__}: {exc}")
