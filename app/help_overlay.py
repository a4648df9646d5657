"""The keys and mouse, listed over the views (F1 shows and hides it, Esc or a click hides it)."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QLabel, QWidget

from app.settings import DEFAULT_SHORTCUTS, MOUSE_HELP, Settings


class HelpOverlay(QLabel):
    def __init__(self, parent: QWidget, settings: Settings) -> None:
        super().__init__(parent)
        self.settings = settings
        self.setStyleSheet(
            "background: rgba(10, 10, 10, 225); color: #eee; border: 1px solid #666; padding: 14px;"
            "font-size: 12px;"
        )
        self.setTextFormat(Qt.TextFormat.RichText)
        self.hide()
        parent.installEventFilter(self)

    def refresh(self) -> None:
        rows = "".join(
            f"<tr><td><b>{escape(self.settings.shortcut(key))}</b></td><td>{escape(text)}</td></tr>"
            for key, (_, text) in DEFAULT_SHORTCUTS.items()
        )
        mouse = "".join(f"<tr><td><b>{escape(k)}</b></td><td>{escape(v)}</td></tr>" for k, v in MOUSE_HELP)
        self.setText(
            "<h3>Keys</h3><table cellspacing=4>"
            + rows
            + "</table><h3>Mouse</h3><table cellspacing=4>"
            + mouse
            + "</table><p>Change the keys and window presets in Edit &gt; Settings.</p>"
        )
        self.adjustSize()
        self._centre()

    def toggle(self) -> None:
        if self.isVisible():
            self.hide()
        else:
            self.refresh()
            self.show()
            self.raise_()

    def _centre(self) -> None:
        parent = self.parentWidget()
        self.move(
            max((parent.width() - self.width()) // 2, 0), max((parent.height() - self.height()) // 2, 0)
        )

    def mousePressEvent(self, event) -> None:
        self.hide()

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self.hide()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Resize and self.isVisible():
            self._centre()
        return False
