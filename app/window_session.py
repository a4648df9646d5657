"""The session behind the main window: the series it claims (read-only, with a banner, when another
window or process holds it), the session restored on opening, and saving it: at once on every marker
change, half a second after the view settles, never when nothing changed."""

from __future__ import annotations

from PySide6.QtCore import QTimer

from core.reading.session import Session, SessionBusy, SessionCorrupt
from core.reading.session_key import session_key
from core.volume import CTVolume


class SessionKeeping:
    """A ``MainWindow`` mixin: ``save_session`` and the claim on the shown series (``key``)."""

    def _keep_session_saved(self) -> None:
        self._save_view = QTimer(self, singleShot=True, interval=500)
        self._save_view.timeout.connect(self.save_session)
        self.markers.changed.connect(self.save_session)
        self.workspace.view_changed.connect(self._save_view.start)
        self.workspace.cursor_moved.connect(lambda _: self._save_view.start())

    def _claim(self, volume: CTVolume) -> None:
        """Release the series being left and claim ``volume``'s: read-only when another holds it."""
        if self.key is not None:
            self.sessions.release(*self.key)
        self.key = session_key(volume)
        self.read_only = not self.sessions.claim(*self.key)
        self.banner.setVisible(self.read_only)

    def _restore_session(self, volume: CTVolume) -> Session | None:
        try:
            return self.sessions.load(*self.key)
        except SessionCorrupt as exc:
            self._warn("Saved session unreadable", f"{exc}\nThe study opens without its saved markers.")
            return None

    def save_session(self) -> None:
        if self.volume is None or self.key is None or self.read_only or self._showing is not None:
            return
        self._save_view.stop()
        session = Session(
            study_uid=self.key[0],
            series_uid=self.key[1],
            markers=list(self.markers.markers),
            labels=self.review.labels,
            view=self.workspace.view_state(),
            results=self.review.results(),
            source=self.source,
            masks=self.review.segmentation.current(),
            measurements=self.review.segmentation.measurements(),
            follow_up=self.follow_up,  # kept: the reading is computed once (app.compare_prior)
        )
        document = session.to_dict()
        if self._last_saved == (self.key, document) and self.sessions.path_for(*self.key).is_file():
            return  # unchanged since written: no fsyncs on the window's thread (~15 ms each)
        try:
            self.sessions.save(session)
            self._last_saved = (self.key, document)
        except (OSError, SessionBusy) as exc:
            self.statusBar().showMessage(f"Could not save the session: {exc}")
