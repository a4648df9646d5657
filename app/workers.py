"""Background work for the window: a function run on Qt's thread pool, with progress and cancel.

The job runs off the GUI thread and talks back only through queued signals; its exceptions become
``errored`` (shown to the reader), never a crash. Cancellation is cooperative: the job polls
``is_cancelled``.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

PROGRESS_INTERVAL_S = 0.05
SWITCH_INTERVAL_S = 0.001  # for the window thread, not the 5 ms default
JOB_NICE = 5  # a job's thread yields a core to the window thread (Linux)


def keep_window_thread_responsive() -> None:
    """Once per process, so that the window answers while jobs run Python beside it."""
    if gc.get_freeze_count():
        return
    # The start-up heap (Qt, torch, numpy: ~220k objects) lives as long as the process. Frozen, it
    # is left out of full collections, which walked it for ~0.2 s with the GIL held and froze the
    # window while a study loaded (bench/bench_viewer.py).
    gc.collect()  # garbage is not frozen with it
    gc.freeze()
    # Each time the window thread let go of the GIL (any Qt call that blocks, starting a job) while
    # a job ran Python, it waited up to the 5 ms switch interval to go on.
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def yield_to_window_thread() -> None:
    """Lower the calling job thread's scheduling priority to ``JOB_NICE`` (Linux, per thread; the
    threads it starts inherit it). On a 2-core machine a loader and a segmentation beside the window
    thread left it waiting for a core mid-frame (bench/bench_viewer.py); the scheduler now gives the
    window thread the core first. A no-op elsewhere, on the window thread (a job run in place) and
    where the thread is already that nice."""
    if not sys.platform.startswith("linux") or threading.current_thread() is threading.main_thread():
        return  # macOS and Windows have no per-thread nice through this call; a job run in place
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < JOB_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, JOB_NICE)
    except OSError:  # not allowed (a sandbox): jobs keep the window thread's priority
        pass


class WorkerSignals(QObject):
    progress = Signal(int, int)
    finished = Signal(object)
    errored = Signal(object)
    cancelled = Signal()


class FunctionWorker(QRunnable):
    """Run ``job(progress=..., cancelled=...)`` in the pool and report through ``signals``."""

    def __init__(self, job: Callable[..., object]) -> None:
        super().__init__()
        self.job = job
        self.signals = WorkerSignals()
        self._cancel = False
        self.done = False
        self._last_progress = -float("inf")
        # Python owns the runnable: a pool-deleted C++ object under a live wrapper crashes at exit.
        self.setAutoDelete(False)

    def cancel(self) -> None:
        self._cancel = True

    def is_cancelled(self) -> bool:
        return self._cancel

    def run(self) -> None:
        from core.util.cancellation import Cancelled

        yield_to_window_thread()
        try:
            result = self.job(progress=self._progress, cancelled=self.is_cancelled)
        except Cancelled:
            self.signals.cancelled.emit()
        except Exception as exc:  # every failure reaches the reader as a message
            self.signals.errored.emit(exc)
        else:
            self.signals.finished.emit(result)
        finally:
            self.done = True

    def _progress(self, done: int, total: int) -> None:
        """Pass progress on at most every ``PROGRESS_INTERVAL_S`` (and the last step): a loader
        reports every slice, and a burst of queued updates, each repainting the progress bar, was
        delivered in one go and froze the window for as long."""
        now = time.monotonic()
        if done >= total or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.signals.progress.emit(done, total)

    def start(self) -> FunctionWorker:
        QThreadPool.globalInstance().start(self)
        return self
