"""The Export dialog of a window compared with its prior: the report carries the follow-up reading and
the PDF each pair's prior and current key images, as ``main.py report`` writes them; with the prior
view cleared, the comparison table without images."""

from __future__ import annotations

import pytest

from app.export_dialog import ExportDialog
from core.followup.compare import FollowUp
from tests.app.followup_window import compared, write_pair
from tests.core.report.test_pdf import pages_text
from tests.core.report.test_pdf_follow_up import images_per_page


@pytest.fixture(scope="module")
def follow_up(tmp_path_factory):
    return write_pair(tmp_path_factory, "window-export")


def _comparison_page(path) -> int:
    """The 1-based number of the PDF's comparison page."""
    pages = pages_text(path)
    return next(k for k, text in enumerate(pages, 1) if "Comparison with the prior study" in text)


def test_export_with_the_prior_shown_writes_its_key_images(qtbot, tmp_path, follow_up):
    window = compared(qtbot, follow_up / "current")
    pairs = FollowUp.from_dict(window.follow_up).pairs
    assert pairs
    dialog = ExportDialog(window)
    qtbot.addWidget(dialog)
    done = dialog.export(tmp_path / "shown", ["pdf"], anonymise=False)
    assert done is not None and not done.failed, dialog.status.text()
    pdf = done.written[0]
    page = _comparison_page(pdf)
    assert "Key images: prior (left) and current (right)" in pages_text(pdf)[page - 1]
    assert images_per_page(pdf).get(page, 0) == 2 * len(pairs)

    window.prior_view.clear()  # the saved reading stays: its table, but no prior volume to cut from
    done = dialog.export(tmp_path / "cleared", ["pdf"], anonymise=False)
    assert done is not None and not done.failed, dialog.status.text()
    pdf = done.written[0]
    page = _comparison_page(pdf)
    assert "Key images" not in pages_text(pdf)[page - 1]
    assert images_per_page(pdf).get(page, 0) == 0
