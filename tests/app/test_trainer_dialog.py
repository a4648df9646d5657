"""The trainer dialog with a tiny model and library: start, curves, cancel, finish, compare, activate,
roll back; the active model is untouched until the reader chooses."""

from __future__ import annotations

import hashlib

import pytest
from PySide6.QtWidgets import QMessageBox

from app.models_page import ModelsPage
from app.trainer_dialog import TrainerDialog
from core.reading.library import Library
from tests.core.model.test_registry import make_registry
from tests.core.reading.test_library import fill


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def setup(tmp_path):
    registry = make_registry(tmp_path)
    library = Library(tmp_path / "labels")
    fill(library, studies=6)
    return registry, library


def _dialog(qtbot, setup, tmp_path, epochs: int) -> TrainerDialog:
    registry, library = setup
    dialog = TrainerDialog(registry, library, tmp_path)
    qtbot.addWidget(dialog)
    dialog.epochs_box.setValue(epochs)
    dialog.batch.setValue(4)
    return dialog


def test_cancel_midway_leaves_the_active_model_unchanged(qtbot, setup, tmp_path):
    registry, library = setup
    active = registry.active()
    before = _sha(active.path), [e.id for e in library.entries()]
    dialog = _dialog(qtbot, setup, tmp_path, epochs=50)
    dialog.start_training()
    qtbot.waitUntil(lambda: len(dialog.epochs) >= 1, timeout=60_000)
    dialog.pause.setChecked(True)  # hold it between steps while we look at the curves
    shown = len(dialog.epochs)
    xs, _ = dialog.loss_curves["total"].getData()
    assert list(xs) == list(range(1, shown + 1)) and len(dialog.auc_curve.getData()[1]) == shown
    dialog.cancel()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=60_000)
    assert "Cancelled" in dialog.status.text() and dialog.finished is None
    assert registry.active().id == active.id and _sha(active.path) == before[0]
    assert [e.id for e in library.entries()] == before[1]
    assert not dialog.activate_button.isEnabled()


def test_finish_compare_activate_and_roll_back(qtbot, setup, tmp_path):
    registry, _ = setup
    demo = registry.active()
    dialog = _dialog(qtbot, setup, tmp_path, epochs=2)
    activated = []
    dialog.model_changed.connect(activated.append)
    dialog.start_training()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=120_000)
    assert dialog.finished is not None, dialog.status.text()
    assert len(dialog.epochs) == 2 and "held out" in dialog.split_text.text().lower()
    assert dialog.comparison.item(4, 0).text() != "" and dialog.comparison.item(4, 1).text() != ""
    assert registry.active().id == demo.id  # nothing changes before the reader chooses
    dialog.activate_button.click()
    [version] = activated
    assert registry.active().id == version.id != demo.id
    assert version.card["parent"]["name"] == demo.card["name"]

    page = ModelsPage(registry)
    qtbot.addWidget(page)
    assert page.table.rowCount() == 2 and page.table.item(1, 0).text() == "active"
    page.table.selectRow(0)
    page.activate_selected()  # roll back to the demo
    assert registry.active().id == demo.id and page.table.item(0, 0).text() == "active"
    page.table.selectRow(0)
    page.remove_selected()
    assert "demo" in page.note.text().lower() or "built-in" in page.note.text().lower()
    assert page.table.rowCount() == 2


def test_too_few_studies_is_said_plainly(qtbot, tmp_path):
    registry = make_registry(tmp_path)
    library = Library(tmp_path / "labels")
    fill(library, studies=1)
    dialog = TrainerDialog(registry, library, tmp_path)
    qtbot.addWidget(dialog)
    # One study: the phantom nodules are mixed in (their validation split is then held out)...
    assert dialog.with_phantoms.isChecked() and "single study" in dialog.split_text.text()
    dialog.with_phantoms.setChecked(False)  # ...and without them there is nothing to hold out
    dialog.start_training()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=60_000)
    assert "stopped" in dialog.status.text() and "studies" in dialog.status.text()
    assert registry.active().id == registry.demo().id


def test_two_windows_fine_tuning_at_once_keep_their_own_state(qtbot, setup, tmp_path):
    """Before, the second dialog deleted and then overwrote the first one's state file (the first,
    continued, would then have resumed the second's model and activated it as its own)."""
    first = _dialog(qtbot, setup, tmp_path, epochs=50)
    first.start_training()
    qtbot.waitUntil(lambda: len(first.epochs) >= 1, timeout=60_000)
    first.pause.setChecked(True)  # alive, between two steps
    [state] = tmp_path.glob("*.state.safetensors")
    held = _sha(state)
    second = _dialog(qtbot, setup, tmp_path, epochs=2)
    second.start_training()
    qtbot.waitUntil(lambda: second.worker is None, timeout=120_000)
    assert second.finished is not None, second.status.text()
    assert [e["epoch"] for e in second.epochs] == [1, 2]  # from the start, not from the first's state
    second.activate_button.click()
    assert state.is_file() and _sha(state) == held  # the first run's state is untouched
    first.cancel()
    qtbot.waitUntil(lambda: first.worker is None, timeout=60_000)


def test_activating_a_model_worse_or_unmeasured_on_the_reserved_split_needs_insisting(
    qtbot, tmp_path, monkeypatch
):
    """The active model has reserved-split figures, the fine-tuned one none: activating asks, shows
    both numbers, defaults to No, and activates only on Yes. The options offer augmentation and, for
    the phantom nodules, randomised scanners (both on)."""
    from core.model.checkpoints import save_checkpoint
    from tests.core.model.test_registry import card, tiny_model

    demo = tmp_path / "resources" / "demo.safetensors"
    save_checkpoint(demo, tiny_model(0), card("tiny-demo", metrics={"test": {"auc": 0.903, "ece": 0.05}}))
    registry = make_registry(tmp_path)
    library = Library(tmp_path / "labels")
    fill(library, studies=6)
    dialog = _dialog(qtbot, (registry, library), tmp_path, epochs=1)
    assert dialog.augment.isChecked() and dialog.options().augment
    dialog.augment.setChecked(False)
    assert not dialog.options().augment
    assert dialog.randomise.isChecked() and not dialog.randomise.isEnabled()  # only for phantoms
    dialog.with_phantoms.setChecked(True)
    assert dialog.randomise.isEnabled() and dialog.options().randomise
    dialog.randomise.setChecked(False)
    assert not dialog.options().randomise
    dialog.with_phantoms.setChecked(False)
    asked, answers = [], [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]

    def question(parent, title, text, buttons, default):
        asked.append((text, default))
        return answers[len(asked) - 1]

    monkeypatch.setattr(QMessageBox, "question", question)  # the question app.models_page.insisted asks
    dialog.start_training()
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=120_000)
    assert dialog.finished is not None, dialog.status.text()
    assert dialog.finished["card"]["training"]["augment"] is None  # the option reached the training
    assert "held-out nodules" in dialog.effect.text() and "AUC" in dialog.effect.text()
    assert dialog.comparison.item(5, 1).text() != ""  # the ECE row
    dialog.activate_button.click()
    [(text, default)] = asked
    assert "0.903 active" in text and "ECE: not measured for the new model, 0.050 active" in text
    assert default == QMessageBox.StandardButton.No
    assert registry.active().id == registry.demo().id and "Not activated" in dialog.status.text()
    assert dialog.activate_button.isEnabled()  # the reader may still keep it, or insist
    # the protocol matrix beside the model it started from (two cells, six nodules, small chests)
    cells = ("1.25mm-soft-standard", "5mm-sharp-low")
    dialog.matrix_settings = {"cells": cells, "nodules": 6, "chest_size": 192}
    assert dialog.matrix_button.isEnabled() and dialog.matrix_table.rowCount() == 0
    dialog.matrix_button.click()
    qtbot.waitUntil(lambda: dialog.matrix_worker is None, timeout=300_000)
    assert dialog.matrix_table.rowCount() == 2, dialog.status.text()
    assert [dialog.matrix_table.verticalHeaderItem(r).text() for r in range(2)] == list(cells)
    shown = [dialog.matrix_table.item(r, c).text() for r in range(2) for c in range(3)]
    assert all(t == "n/a" or 0 <= float(t) <= 1 for t in shown) and any(t != "n/a" for t in shown)
    assert "Protocol matrix on" in dialog.status.text()
    dialog.activate_button.click()
    assert len(asked) == 2 and registry.active().id != registry.demo().id
