"""A NIfTI file the loader had to guess about, or refuse, says so in the window."""

from __future__ import annotations

from app.main_window import MainWindow
from tests.core.report.test_report_warnings import PIXDIM, nifti_without_slice_spacing


def test_a_made_up_voxel_size_shows_in_the_status_bar(qtbot, tmp_path):
    nifti_without_slice_spacing(tmp_path)  # writes tmp_path / "ct.nii"
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_path(tmp_path / "ct.nii")
    qtbot.waitUntil(lambda: window.volume is not None and not window.busy, timeout=20_000)
    assert PIXDIM in window.statusBar().currentMessage()


def test_a_truncated_nifti_is_refused_with_a_message(qtbot, tmp_path):
    nifti_without_slice_spacing(tmp_path)
    path = tmp_path / "ct.nii"
    path.write_bytes(path.read_bytes()[:-1000])
    window = MainWindow()
    qtbot.addWidget(window)
    window.open_path(path)
    qtbot.waitUntil(lambda: window.error_box is not None, timeout=20_000)
    assert "ct.nii: truncated:" in window.error_box.text() and window.volume is None
