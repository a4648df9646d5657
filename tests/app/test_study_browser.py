"""The Studies tree in a narrow dock: long series names elided in the middle, whole in the tooltip."""

from __future__ import annotations

import pydicom
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from app.study_browser import StudyBrowser
from core.dicom.catalogue import catalogue
from tests.dicom_factory import write_series

LONG = "Phantom 0.7 mm x 1.25 mm, lung kernel, inspiration, reconstructed"


def test_a_long_series_name_is_elided_in_the_middle_and_whole_in_its_tooltip(qtbot, tmp_path):
    paths = write_series(tmp_path / "ct", 3)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SeriesDescription = LONG
        ds.save_as(path)
    (tmp_path / "readme.txt").write_text("x")
    tree = StudyBrowser()
    qtbot.addWidget(tree)
    tree.resize(260, 400)  # the Studies dock's width
    tree.show()
    qtbot.waitExposed(tree)
    tree.show_catalogue(catalogue(tmp_path))
    QApplication.processEvents()
    series = tree.topLevelItem(0).child(0).child(0)
    assert LONG in series.text(0) and series.toolTip(0) == series.text(0)
    assert tree.topLevelItem(0).toolTip(0).startswith("Patient")
    assert tree.textElideMode() == Qt.TextElideMode.ElideMiddle
    header = tree.header()
    widths = [header.sectionSize(c) for c in range(3)]
    assert sum(widths) <= tree.viewport().width()  # no column runs off the dock: the name is elided
    assert widths[0] < tree.fontMetrics().horizontalAdvance(series.text(0))  # ... which it has to be here
    assert tree.horizontalScrollBar().maximum() == 0
    assert not tree.isColumnHidden(2)  # the skipped readme's reason is shown
    tree.show_catalogue(catalogue(tmp_path / "ct"))  # nothing skipped, no problems: no empty column
    assert tree.isColumnHidden(2)
