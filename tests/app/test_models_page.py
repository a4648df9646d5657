"""Activating a model from the Models page applies the trainer dialog's rule: a model worse or not
measured on the reserved test split than the active one needs the reader to insist (both figures
shown, the question defaulting to No); a better one is activated without a question."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.models_page import ModelsPage
from core.model.checkpoints import save_checkpoint
from tests.core.model.test_registry import card, make_registry, tiny_model

NO, YES = QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes


def _select(page: ModelsPage, version_id: str) -> None:
    ids = [page.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in range(page.table.rowCount())]
    page.table.selectRow(ids.index(version_id))


def test_a_worse_or_unmeasured_model_needs_insisting(qtbot, tmp_path, monkeypatch):
    demo = tmp_path / "resources" / "demo.safetensors"
    save_checkpoint(demo, tiny_model(0), card("tiny-demo", metrics={"test": {"auc": 0.903, "ece": 0.05}}))
    registry = make_registry(tmp_path)
    worse = registry.add(tiny_model(1), card("worse", metrics={"test": {"auc": 0.85, "ece": 0.06}}))
    unmeasured = registry.add(tiny_model(2), card("unmeasured"))
    asked, answers = [], []

    def question(parent, title, text, buttons, default):
        asked.append((text, default))
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", question)
    page = ModelsPage(registry)
    qtbot.addWidget(page)
    activated = []
    page.activated.connect(activated.append)

    answers.append(NO)
    _select(page, unmeasured.id)
    page.activate_selected()
    [(text, default)] = asked
    assert "AUC: not measured for the new model, 0.903 active" in text and "0.050 active" in text
    assert default == NO
    assert registry.active().id == registry.demo().id and not activated
    assert "Not activated" in page.note.text()

    answers.append(YES)
    _select(page, worse.id)
    page.activate_selected()
    assert "AUC: 0.850 new, 0.903 active" in asked[1][0] and "ECE: 0.060 new, 0.050 active" in asked[1][0]
    assert registry.active().id == worse.id and [v.id for v in activated] == [worse.id]

    _select(page, registry.demo().id)  # better on both figures: rolled back without a question
    page.activate_selected()
    assert len(asked) == 2 and registry.active().id == registry.demo().id
