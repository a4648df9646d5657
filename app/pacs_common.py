"""What the PACS windows share: running a PACS call off the window thread, and the node chooser.

Every network call (echo, find, series, retrieve, send) runs in a ``FunctionWorker``; the window stays
free and a failure arrives as its one-line reason (``PacsError`` names neither the patient nor a
secret). The node chooser lists the nodes of ``pacs.json`` and takes an inline ``AET@HOST:PORT`` or
``http(s)://`` URL as well.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QComboBox

from app.workers import FunctionWorker
from core.pacs.errors import PacsError
from core.pacs.nodes import Node, load_settings, resolve


def reason(exc: BaseException) -> str:
    """One line for the reader: the message of a PacsError, else the kind of error and its text."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, PacsError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_RUNNING: list[FunctionWorker] = []  # kept until their thread has left and their answer is shown


def start_job(
    job: Callable[..., object],
    done: Callable[[object], None],
    failed: Callable[[str], None],
    cancelled: Callable[[], None] | None = None,
) -> FunctionWorker:
    """Run ``job(progress=, cancelled=)`` in the pool; ``done(result)`` or ``failed(reason)`` on the
    window thread. The worker outlives a dialog closed while it runs (a pool thread still uses it)."""
    worker = FunctionWorker(job)
    _RUNNING[:] = [w for w in _RUNNING if not (w.done and w.delivered)]  # the thread left, the answer shown
    _RUNNING.append(worker)
    worker.delivered = False

    def deliver(callback, *args) -> None:
        worker.delivered = True
        callback(*args)

    worker.signals.finished.connect(lambda result: deliver(done, result))
    worker.signals.errored.connect(lambda exc: deliver(failed, reason(exc)))
    worker.signals.cancelled.connect(lambda: deliver(cancelled or (lambda: failed("cancelled"))))
    return worker.start()


class NodeChooser(QComboBox):
    """The named nodes of the PACS settings; an inline node may be typed in."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setEditable(True)
        self.setMinimumContentsLength(28)
        self.lineEdit().setPlaceholderText("a node, AET@HOST:PORT or http(s)://.../dicom-web")
        self.problem = ""
        self.reload()

    def reload(self) -> None:
        current = self.currentText()
        self.clear()
        try:
            self.addItems(sorted(load_settings().nodes))
            self.problem = ""
        except PacsError as exc:
            self.problem = str(exc)
        if current:
            self.setEditText(current)

    def node(self) -> Node:
        """The chosen node, or PacsError saying why it cannot be used."""
        text = self.currentText().strip()
        if not text:
            raise PacsError("choose a node (Edit > Settings > PACS) or type AET@HOST:PORT or a URL")
        if self.problem:
            raise PacsError(self.problem)
        return resolve(text)
