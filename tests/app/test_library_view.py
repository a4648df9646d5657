"""The library view's export and import: counts in its summary line, and a refused file named there."""

from __future__ import annotations

from app.library_view import LibraryView
from core.reading.library import Library
from tests.core.reading.test_library import fill


def test_export_then_import_into_another_library(qtbot, tmp_path):
    source = LibraryView(Library(tmp_path / "source"))
    qtbot.addWidget(source)
    fill(source.library)
    source.export_to(tmp_path / "lib.zip")
    assert source.summary.text() == "Exported 8 entr(y/ies) to lib.zip"
    target = LibraryView(Library(tmp_path / "target"))
    qtbot.addWidget(target)
    target.import_from(tmp_path / "lib.zip")
    assert target.summary.text() == "Imported from lib.zip: 8 added, 0 replaced, 0 skipped"
    assert target.table.rowCount() == 8
    target.import_from(tmp_path / "missing.zip")
    assert (
        "Import failed, nothing changed" in target.summary.text() and "missing.zip" in target.summary.text()
    )
