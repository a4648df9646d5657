"""What kept the window from answering while a study loaded in the background (issue 15, item 14)."""

from __future__ import annotations

import gc
import time

from app.main_window import MainWindow
from app.workers import FunctionWorker


def test_progress_of_a_fast_job_reaches_the_window_at_a_bounded_rate(monkeypatch):
    clock = iter(range(10**6))
    monkeypatch.setattr(time, "monotonic", lambda: next(clock) / 1000)  # 1 ms per step

    def job(progress, cancelled):
        for done in range(1, 1001):
            progress(done, 1000)
        return "done"

    worker = FunctionWorker(job)
    seen, results = [], []
    worker.signals.progress.connect(lambda done, total: seen.append((done, total)))
    worker.signals.finished.connect(results.append)
    worker.run()  # here, in this thread: the signals are delivered at once
    assert results == ["done"]
    assert seen[-1] == (1000, 1000) and seen[0] == (1, 1000)
    assert len(seen) <= 25, len(seen)  # 1 s of work: one per 50 ms, and the last


def test_the_start_up_heap_is_left_out_of_full_collections(qtbot):
    window = MainWindow()
    qtbot.addWidget(window)
    assert gc.get_freeze_count() > 10 * len(gc.get_objects())
