"""Activating a model from the Models page applies the trainer dialog's rule: a model worse or not
measured on the reserved test split than the active one needs the reader to insist (both figures
shown, the question defaulting to No); a better one is activated without a question."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from app.models_page import COLUMNS, ModelsPage
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


def test_the_protocol_matrix_kept_in_a_card_is_summarised(qtbot, tmp_path):
    demo = tmp_path / "resources" / "demo.safetensors"
    cells = {
        "1.25mm-soft-standard": {"auc": 0.886, "ece": 0.064, "verdicts": {"beats_diameter": True}},
        "5mm-soft-low": {"auc": 0.860, "ece": 0.068, "verdicts": {"beats_diameter": False}},
    }
    save_checkpoint(demo, tiny_model(0), card("tiny-demo", robustness={"cells": cells}))
    registry = make_registry(tmp_path)
    bare = registry.add(tiny_model(1), card("bare"))
    page = ModelsPage(registry)
    qtbot.addWidget(page)
    column = COLUMNS.index("Protocol matrix")
    texts = {
        page.table.item(r, 0).data(Qt.ItemDataRole.UserRole): page.table.item(r, column).text()
        for r in range(page.table.rowCount())
    }
    assert (
        texts[registry.demo().id]
        == "2 protocols: AUC 0.860-0.886, ECE <= 0.068; beats diameter (+0.01) in 1 of 2"
    )
    assert texts[bare.id] == "not measured"
