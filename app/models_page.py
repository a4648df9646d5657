"""Model versions: every trained model kept with its card; activate any, roll back, restore the demo.

The active model is what Analyse uses; its name and version appear wherever scores appear. Activating
a model worse on the reserved test split than the active one, or not measured there where the active
one is, needs the reader to insist (``insisted``: the trainer dialog asks the same question).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from core.model.registry import ModelRegistry, RegistryError
from core.reading.finetune.comparison import reserved_split_concerns
from core.training.robustness import card_summary

COLUMNS = [
    "",
    "Model",
    "Trained",
    "Parent",
    "Validation AUC",
    "Attribute MAE",
    "Protocol matrix",
    "Trained on",
]


def _metric(version, key: str) -> str:
    for split in ("finetune_val", "val"):
        metrics = version.metrics.get(split) if isinstance(version.metrics, dict) else None
        if isinstance(metrics, dict):
            value = metrics.get(key) if key != "mean_mae" else (metrics.get("attributes") or {}).get(key)
            if isinstance(value, int | float):
                return f"{value:.3f}"
    return ""


def insisted(parent, card: dict, name: str, active) -> bool:
    """True when nothing speaks against activating the model of ``card`` (called ``name``) instead of
    ``active`` (``reserved_split_concerns``), or the reader insists after seeing the reserved-split
    figures of both; the question defaults to No."""
    concerns = reserved_split_concerns(card, active.card)
    if not concerns:
        return True
    answer = QMessageBox.question(
        parent,
        "Activate a model that may be worse?",
        f"Compared with the active model ({active.label}) on the reserved test split:\n\n"
        + "\n".join(f"- {c}" for c in concerns)
        + f"\n\nActivate {name} anyway?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes


class ModelsPage(QDialog):
    activated = Signal(object)  # the Version now active

    def __init__(self, registry: ModelRegistry, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.registry = registry
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.note = QLabel()
        self.note.setWordWrap(True)
        activate = QPushButton("Activate selected")
        activate.clicked.connect(self.activate_selected)
        remove = QPushButton("Remove selected")
        remove.clicked.connect(self.remove_selected)
        demo = QPushButton("Restore the built-in demo model")
        demo.clicked.connect(self.restore_demo)
        buttons = QHBoxLayout()
        for button in (activate, remove, demo):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(self.note)
        layout.addLayout(buttons)
        self.resize(900, 360)
        self.refresh()

    def refresh(self) -> None:
        active = self.registry.active()
        versions = self.registry.versions()
        self.table.setRowCount(len(versions))
        for row, version in enumerate(versions):
            parent = version.parent or {}
            texts = [
                "active" if version.id == active.id else "",
                version.label + (" (built-in, read-only)" if version.read_only else ""),
                version.date[:16].replace("T", " "),
                str(parent.get("name", "") or ""),
                _metric(version, "auc"),
                _metric(version, "mean_mae"),
                card_summary(version.card) or "not measured",
                str(version.card.get("trained_on", "")),
            ]
            for column, text in enumerate(texts):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, version.id)
                if version.problem:
                    item.setToolTip(version.problem)
                self.table.setItem(row, column, item)
            if version.id == active.id:
                font = QFont(self.table.item(row, 1).font())
                font.setBold(True)
                for column in range(len(COLUMNS)):
                    self.table.item(row, column).setFont(font)
        self.table.resizeColumnsToContents()
        self.note.setText(active.note or f"Active: {active.label}. Analyse uses it; reports record it.")

    def selected_id(self) -> str:
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole) if rows else ""

    def activate_selected(self) -> None:
        version_id = self.selected_id()
        if not version_id:
            return
        try:
            chosen, active = self.registry.get(version_id), self.registry.active()
            if chosen.id != active.id and not insisted(self, chosen.card, chosen.label, active):
                self.note.setText(f"Not activated; {active.label} stays active.")
                return
            version = self.registry.activate(version_id)
        except RegistryError as exc:
            self.note.setText(str(exc))
            return
        self.refresh()
        self.activated.emit(version)

    def remove_selected(self) -> None:
        version_id = self.selected_id()
        if not version_id:
            return
        try:
            self.registry.remove(version_id)
        except RegistryError as exc:
            self.note.setText(str(exc))
            return
        self.refresh()

    def restore_demo(self) -> None:
        version = self.registry.restore_demo()
        self.refresh()
        self.activated.emit(version)
