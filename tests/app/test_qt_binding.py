"""Guards against a broken Qt binding: PySide6 6.12.0 drops a reference to ``True`` on every signal
emit, so a session of a few thousand clicks ends in ``bool_dealloc`` (a hard crash). pyproject.toml
excludes it; this test fails on any binding with the same fault."""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    plain = Signal()
    carrying = Signal(object)


def test_emitting_signals_keeps_reference_counts():
    emitter = _Emitter()
    received = []
    emitter.carrying.connect(received.append)
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(500):
        emitter.plain.emit()
        emitter.carrying.emit(1)
    after = sys.getrefcount(True), sys.getrefcount(False)
    assert len(received) == 500
    assert abs(after[0] - before[0]) < 50 and abs(after[1] - before[1]) < 50, (before, after)
