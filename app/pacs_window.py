"""The main window's PACS side: File > Query PACS (retrieved studies open in the viewer and join the
worklist) and File > Receive from PACS (the listener, off by default; arrivals join the worklist).

A study joins the worklist by having a session: for each CT series of a retrieved or received study
that has none yet, an empty one is saved whose source is the study's folder in the cache, so that the
worklist lists it and opens it from there. ``add_pacs_actions(window, menu)`` is the one hook in
``app.menus``.
"""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError
from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence

from core.pacs.errors import PacsError
from core.reading.session import Session, SessionCorrupt, SessionStore

QUERY_SHORTCUT = "Ctrl+Shift+P"
SETTLE_MS = 2000  # arrivals are announced once the listener has been quiet this long


def register_study(store: SessionStore, folder: Path) -> int:
    """Give each CT series under ``folder`` (``<study>/<series>/*.dcm``) a session when it has none, so
    the worklist lists it; how many were added."""
    added = 0
    for series in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        first = next(iter(sorted(series.glob("*.dcm"))), None)
        if first is None:
            continue
        try:
            ds = pydicom.dcmread(first, stop_before_pixels=True)
            study, uid, modality = str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.Modality)
        except (OSError, InvalidDicomError, AttributeError):
            continue
        if modality != "CT":
            continue
        try:
            if store.load(study, uid) is not None:
                continue
        except SessionCorrupt:
            pass  # moved aside by load: a fresh one takes its place
        store.save(Session(study, uid, source=str(Path(folder).resolve())))
        added += 1
    return added


def add_pacs_actions(window, menu) -> None:
    """File > Query PACS... and File > Receive from PACS (the listener toggle)."""
    query = menu.addAction("&Query PACS...", lambda: open_query(window), QKeySequence(QUERY_SHORTCUT))
    query.setToolTip("Search a PACS, retrieve a study and open it")
    window.listener_action = QAction("Receive from PACS (listener)", window, checkable=True)
    window.listener_action.setToolTip("Accept studies a PACS pushes to us (Edit > Settings > PACS)")
    window.listener_action.toggled.connect(lambda on: toggle_listener(window, on))
    menu.addAction(window.listener_action)
    window.installEventFilter(_StopOnClose(window))


class _StopOnClose(QObject):
    """Stops the listener when its window closes (the port is freed for the next one)."""

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Close and watched.listener_action.isChecked():
            watched.listener_action.setChecked(False)
        return False


def open_query(window):
    from app.pacs_query import QueryDialog

    dialog = getattr(window, "pacs_query", None)
    if dialog is None:
        dialog = window.pacs_query = QueryDialog(window)
        dialog.retrieved.connect(lambda folder: open_retrieved(window, folder))
    dialog.node.reload()
    dialog.show()
    dialog.raise_()
    return dialog


def open_retrieved(window, folder: Path) -> None:
    """Open a retrieved study in the viewer and list it in the worklist."""
    try:
        register_study(window.sessions, folder)
    except OSError as exc:
        window.statusBar().showMessage(f"{folder}: not added to the worklist ({exc.strerror or exc})")
    window.open_path(folder)


class _Arrivals(QObject):
    """Brings the listener's arrivals (on pynetdicom's threads) to the window thread."""

    arrived = Signal(str)


def toggle_listener(window, on: bool) -> None:
    """Start (or stop) the storage SCP with the settings' AE title, port, allowed callers and disk cap."""
    server = getattr(window, "pacs_listener", None)
    if server is not None:
        from core.pacs.listener import stop

        stop(server)
        window.pacs_listener = None
    if not on:
        window.statusBar().showMessage("Not receiving from PACS", 5000)
        return
    try:
        listener = make_listener(window)
    except (PacsError, ValueError, TypeError, OSError) as exc:
        _listener_failed(window, str(exc))
        return
    try:
        window.pacs_listener = listener.start()
    except OSError as exc:
        _listener_failed(window, f"port {listener.port}: cannot listen ({exc.strerror or exc})")
        return
    who = ", ".join(listener.allowed) or "any AE title"
    window.statusBar().showMessage(f"Receiving as {listener.aet} on port {listener.port} from {who}")


def _listener_failed(window, text: str) -> None:
    window.statusBar().showMessage(f"Listener not started: {text}")
    window.listener_action.blockSignals(True)
    window.listener_action.setChecked(False)
    window.listener_action.blockSignals(False)


def make_listener(window):
    from core.pacs.listener import DEFAULT_PORT, Listener
    from core.pacs.nodes import load_settings
    from core.pacs.storage import study_cache

    saved = load_settings().listener
    relay = _Arrivals(window)
    pending: set[str] = set()
    timer = QTimer(window, singleShot=True, interval=SETTLE_MS)

    def arrived(path: str) -> None:
        pending.add(str(Path(path).parents[1]))  # <study>/<series>/<sop>.dcm: the study's folder
        timer.start()

    def settle() -> None:
        added = sum(register_study(window.sessions, Path(folder)) for folder in sorted(pending))
        window.statusBar().showMessage(
            f"Received {len(pending)} study(ies) from PACS; {added} new in the worklist (File > Worklist)"
        )
        pending.clear()
        if getattr(window, "worklist", None) is not None:
            window.worklist.refresh()

    relay.arrived.connect(arrived)
    timer.timeout.connect(settle)
    window.pacs_arrivals = (relay, timer)
    listener = Listener(
        aet=str(saved.get("aet", "MTMR")),
        port=int(saved.get("port", DEFAULT_PORT)),
        root=study_cache(),
        allowed=[str(a) for a in saved.get("allowed", [])],
        max_bytes=int(float(saved.get("max_mb", 20_000)) * 1e6),
        on_arrival=lambda path: relay.arrived.emit(str(path)),
    )
    if not 0 < listener.port < 65536:
        raise ValueError(f"port {listener.port} is not between 1 and 65535 (Edit > Settings > PACS)")
    return listener
