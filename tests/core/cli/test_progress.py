"""core.cli.progress: the one stderr progress printer of the long commands."""

from __future__ import annotations

import io

import core.cli.progress as progress_module
from core.cli.progress import Progress, bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar():
    assert bar(2, 3) == "[################--------]"
    assert bar(0, 0, 4) == "[####]" and bar(1, 4, 4) == "[#---]"


def test_a_pipe_gets_whole_lines_at_most_every_few_seconds(monkeypatch):
    clock = iter([0.0, 1.0, 6.0, 7.0, 8.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    stream = io.StringIO()
    progress = Progress(stream, every_s=5.0)
    progress.status("1/5")  # t=0: the first is shown
    progress.status("2/5")  # t=1: too soon
    progress.status("3/5")  # t=6: shown
    progress.status("4/5", always=True)  # t=7: shown
    progress.say("skipped: x")
    progress.status("5/5", done=True)  # t=8: the last is always shown
    assert stream.getvalue() == "1/5\n3/5\n4/5\nskipped: x\n5/5\n"


def test_a_terminal_redraws_one_line_and_keeps_said_lines_above_it(monkeypatch):
    clock = iter([0.0, 1.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    stream = Terminal()
    progress = Progress(stream)
    progress.status("1/2")
    progress.say("note: n")
    progress.status("2/2", done=True)
    assert stream.getvalue() == "\r\033[K1/2" + "\r\033[Knote: n\n1/2" + "\r\033[K2/2\n"
    progress.say("after")  # no status line left to redraw
    assert stream.getvalue().endswith("2/2\nafter\n")


def test_clear_removes_an_unfinished_status_line():
    stream = Terminal()
    progress = Progress(stream)
    progress.status("epoch 1 [##..] step 1/4")
    progress.clear()
    assert stream.getvalue().endswith("\r\033[K") and progress.shown == ""
    progress.clear()  # nothing drawn: nothing written
    assert stream.getvalue().count("\r\033[K") == 2
