"""The Export dialog on a window-like stand-in: exports CSV and JSON, asks before overwriting (and keeps
the files when told no), anonymises, remembers the reader, and previews the PDF's first page."""

from __future__ import annotations

import importlib.util
import json
import shutil
from types import SimpleNamespace

import pytest
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

import app.export_dialog as export_dialog
from app.export_dialog import NEEDS_POPPLER, ExportDialog
from app.settings import Settings
from core.nodule.markers import MarkerSet, NoduleMarker
from tests.core.report.test_anonymise import phi_report, phi_volume
from tests.core.report.test_tables import CARD

PHI_WORDS = ("Quackenbush", "Ermintrude", "77340912", "19411123", "Fotheringay", "20240229")


def fake_window(tmp_path, volume=True, reader="Dr Reader"):
    report, _ = phi_report()
    markers = [n.marker for n in report.nodules]
    results = {n.marker.id: n.result for n in report.nodules}
    labels = {n.marker.id: n.reader for n in report.nodules if n.reader is not None}
    settings = Settings(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    settings.set_value("reader/name", reader)
    analysis = SimpleNamespace(current=lambda ms: results, predictor=SimpleNamespace(card=CARD))
    return SimpleNamespace(
        volume=phi_volume() if volume else None,
        markers=SimpleNamespace(markers=MarkerSet(markers)),
        review=SimpleNamespace(
            analysis=analysis,
            labels=labels,
            location=lambda m: "left lower zone, slice 5",
            segmentation=SimpleNamespace(current=dict, measurements=dict),
        ),
        settings=settings,
        source="",
    )


@pytest.fixture
def dialog(qtbot, tmp_path):
    window = fake_window(tmp_path)
    dialog = ExportDialog(window)
    qtbot.addWidget(dialog)
    return dialog


def test_exports_csv_and_json_and_remembers_the_reader(dialog, tmp_path):
    assert dialog.reader.text() == "Dr Reader"  # prefilled from settings
    dialog.reader.setText("Dr Someone Else")
    out = tmp_path / "exports"
    done = dialog.export(out, ["csv", "json"], anonymise=False)
    assert done is not None and not done.failed
    assert sorted(p.name for p in out.iterdir()) == ["ranking.csv", "report.json"]
    data = json.loads((out / "report.json").read_text())
    assert data["reader"]["name"] == "Dr Someone Else" and len(data["nodules"]) == 2
    assert (
        data["model"]["name"] == "MTMR-Net" and data["nodules"][0]["location"] == "left lower zone, slice 5"
    )
    assert data["nodules"][0]["reader"]["malignancy"] == 4.0
    assert "Wrote ranking.csv" in dialog.status.text() and "Wrote report.json" in dialog.status.text()
    settings = dialog.settings
    assert settings.value("reader/name", "") == "Dr Someone Else"
    assert settings.value("export/folder", "") == str(out)


def test_asks_before_overwriting_and_keeps_the_files_on_no(dialog, tmp_path):
    out = tmp_path / "exports"
    out.mkdir()
    (out / "report.json").write_text("keep me")
    asked = []

    def say_no(paths):
        asked.append(paths)
        return False

    assert dialog.export(out, ["csv", "json"], False, confirm_overwrite=say_no) is None
    assert asked == [[out / "report.json"]]
    assert (out / "report.json").read_text() == "keep me" and not (out / "ranking.csv").exists()
    assert "kept" in dialog.status.text()

    done = dialog.export(out, ["csv", "json"], False, confirm_overwrite=lambda paths: True)
    assert done is not None and not done.failed
    assert json.loads((out / "report.json").read_text())["schema"] == "mtmr-reader/report/1"


def test_export_button_asks_with_a_message_box(dialog, tmp_path, monkeypatch):
    out = tmp_path / "exports"
    out.mkdir()
    (out / "ranking.csv").write_text("keep me")
    questions = []

    def answer(parent, title, text, *args):
        questions.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", answer)
    dialog.folder.setText(str(out))
    for fmt, box in dialog.checks.items():
        box.setChecked(fmt in ("csv", "json"))
    assert dialog.chosen_formats() == ["csv", "json"]
    dialog.export_button.click()
    assert len(questions) == 1 and "ranking.csv" in questions[0]
    assert (out / "ranking.csv").read_text() == "keep me" and not (out / "report.json").exists()


def test_anonymised_export_holds_no_phi(dialog, tmp_path):
    out = tmp_path / "anon"
    done = dialog.export(out, ["csv", "json"], anonymise=True)
    assert done is not None and done.report.anonymised
    for name in ("ranking.csv", "report.json"):
        text = (out / name).read_text()
        assert not any(word.lower() in text.lower() for word in PHI_WORDS), name
    data = json.loads((out / "report.json").read_text())
    assert data["reader"]["name"] == "" and data["study"]["study_uid"].startswith("2.25.")


def test_sr_without_dicom_files_is_reported_not_fatal(dialog, tmp_path):
    if export_dialog.unavailable("sr"):
        pytest.skip("the SR writer is not present")
    done = dialog.export(tmp_path / "out", ["sr", "json"], anonymise=False)
    assert [o.format for o in done.failed] == ["sr"] and (tmp_path / "out" / "report.json").is_file()
    assert "DICOM SR not written" in dialog.status.text()


def test_no_study_means_nothing_to_export(qtbot, tmp_path):
    dialog = ExportDialog(fake_window(tmp_path, volume=False))
    qtbot.addWidget(dialog)
    assert not dialog.export_button.isEnabled()
    assert dialog.export(tmp_path / "out", ["csv"], False) is None
    assert not (tmp_path / "out").exists()


def test_preview_without_poppler_says_so(dialog, monkeypatch):
    if export_dialog.unavailable("pdf"):
        assert dialog.preview() is None and "not available" in dialog.preview_label.text()
        return
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert dialog.preview() is None
    assert dialog.preview_label.text() == NEEDS_POPPLER


@pytest.mark.skipif(
    importlib.util.find_spec("core.report.pdf") is None or shutil.which("pdftoppm") is None,
    reason="needs the PDF writer and pdftoppm",
)
def test_preview_shows_the_first_page(dialog):
    png = dialog.preview()
    assert png is not None and png.is_file()
    assert not dialog.preview_label.pixmap().isNull()
    assert dialog.preview_label.pixmap().width() == export_dialog.PREVIEW_WIDTH
    dialog.reject()  # the temporary folder goes with the dialog
    assert not png.exists()


def test_a_study_marker_set_is_what_the_report_lists(dialog):
    report = dialog.build_report()
    assert {n.marker.id for n in report.nodules} == {m.id for m in dialog.source.markers.markers}
    assert isinstance(next(iter(dialog.source.markers.markers)), NoduleMarker)
