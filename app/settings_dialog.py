"""Edit > Settings: window/level presets and keyboard shortcuts."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QKeySequenceEdit,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
)

from app.settings import DEFAULT_PRESETS, DEFAULT_SHORTCUTS, Settings


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.presets = QTableWidget(len(DEFAULT_PRESETS), 3)
        self.presets.setHorizontalHeaderLabels(["Preset", "Width (HU)", "Level (HU)"])
        for row, (name, (width, level)) in enumerate(settings.presets().items()):
            for column, value in enumerate((name, f"{width:g}", f"{level:g}")):
                self.presets.setItem(row, column, QTableWidgetItem(value))
        self.keys: dict[str, QKeySequenceEdit] = {}
        shortcuts = QTableWidget(len(DEFAULT_SHORTCUTS), 2)
        shortcuts.setHorizontalHeaderLabels(["Action", "Shortcut"])
        for row, (key, (_, text)) in enumerate(DEFAULT_SHORTCUTS.items()):
            shortcuts.setItem(row, 0, QTableWidgetItem(text))
            editor = QKeySequenceEdit(QKeySequence(settings.shortcut(key)))
            shortcuts.setCellWidget(row, 1, editor)
            self.keys[key] = editor
        shortcuts.resizeColumnsToContents()
        self.error = QLabel()
        self.error.setStyleSheet("color: #c00;")
        tabs = QTabWidget()
        tabs.addTab(self.presets, "Window presets")
        tabs.addTab(shortcuts, "Shortcuts")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(self.error)
        layout.addWidget(buttons)
        self.resize(520, 480)

    def accept(self) -> None:
        presets = {}
        for row in range(self.presets.rowCount()):
            cells = [
                self.presets.item(row, c).text().strip() if self.presets.item(row, c) else ""
                for c in range(3)
            ]
            try:
                width, level = float(cells[1]), float(cells[2])
            except ValueError:
                self.error.setText(f"Preset {cells[0] or row + 1}: width and level must be numbers")
                return
            if width < 1 or not cells[0]:
                self.error.setText(f"Preset {cells[0] or row + 1}: needs a name and a width of at least 1 HU")
                return
            presets[cells[0]] = (width, level)
        used: dict[str, str] = {}
        for key, editor in self.keys.items():
            text = editor.keySequence().toString()
            if text and text in used:
                self.error.setText(f"{text} is used twice ({used[text]} and {key})")
                return
            used[text] = key
        self.settings.set_presets(presets)
        for key, editor in self.keys.items():
            self.settings.set_shortcut(key, editor.keySequence().toString())
        super().accept()
