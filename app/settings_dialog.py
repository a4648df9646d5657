"""Edit > Settings: window/level presets (the four built-in ones and the reader's own), keyboard
shortcuts and the PACS nodes and listener (``app.pacs_settings``)."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QKeySequenceEdit,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.pacs_settings import PacsPage
from app.settings import DEFAULT_PRESETS, DEFAULT_SHORTCUTS, MAX_PRESETS, Settings


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, parent=None, current: tuple[float, float] = (400.0, 40.0)) -> None:
        """``current``: the window on screen, which "Add" offers as a new preset."""
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.current = current
        self.presets = QTableWidget(0, 3)
        self.presets.setHorizontalHeaderLabels(["Preset", "Width (HU)", "Level (HU)"])
        self.add_preset = QPushButton("Add the current window")
        self.add_preset.clicked.connect(self._add_current)
        self.remove_preset = QPushButton("Remove")
        self.remove_preset.setToolTip("Remove the selected preset of your own (the built-in ones stay)")
        self.remove_preset.clicked.connect(self._remove_row)
        for name, (width, level) in settings.presets().items():
            self._add_row(name, width, level)
        self.presets.itemSelectionChanged.connect(self._enable)
        self._enable()
        preset_buttons = QHBoxLayout()
        preset_buttons.addWidget(self.add_preset)
        preset_buttons.addWidget(self.remove_preset)
        preset_buttons.addStretch(1)
        preset_page = QWidget()
        preset_layout = QVBoxLayout(preset_page)
        preset_layout.addWidget(self.presets)
        preset_layout.addLayout(preset_buttons)
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
        tabs.addTab(preset_page, "Window presets")
        tabs.addTab(shortcuts, "Shortcuts")
        self.pacs = PacsPage()
        tabs.addTab(self.pacs, "PACS")
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

    def _add_row(self, name: str, width: float, level: float) -> None:
        row = self.presets.rowCount()
        self.presets.insertRow(row)
        for column, value in enumerate((name, f"{width:g}", f"{level:g}")):
            self.presets.setItem(row, column, QTableWidgetItem(value))
        self._enable()

    def _add_current(self) -> None:
        self._add_row(f"Preset {self.presets.rowCount() + 1}", *self.current)

    def _remove_row(self) -> None:
        row = self.presets.currentRow()
        if row >= len(DEFAULT_PRESETS):
            self.presets.removeRow(row)
        self._enable()

    def _enable(self) -> None:
        self.add_preset.setEnabled(self.presets.rowCount() < MAX_PRESETS)
        self.remove_preset.setEnabled(self.presets.currentRow() >= len(DEFAULT_PRESETS))

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
            if cells[0] in presets:
                self.error.setText(f"Preset {cells[0]}: the name is used twice")
                return
            presets[cells[0]] = (width, level)
        used: dict[str, str] = {}
        for key, editor in self.keys.items():
            text = editor.keySequence().toString()
            if text and text in used:
                self.error.setText(f"{text} is used twice ({used[text]} and {key})")
                return
            used[text] = key
        error = self.pacs.save()
        if error:
            self.error.setText(error)
            return
        self.settings.set_presets(presets)
        for key, editor in self.keys.items():
            self.settings.set_shortcut(key, editor.keySequence().toString())
        super().accept()
