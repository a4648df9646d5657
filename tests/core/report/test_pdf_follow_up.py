"""The printable report with a follow-up reading: a comparison page after the summary, one row per
nodule of the reading (prior and current size, change, VDT, trend, Lung-RADS with priors)."""

from __future__ import annotations

from core.report.content import build_report
from core.report.pdf import write_pdf
from core.report.pdf_follow_up import comparison_row
from tests.core.report.test_follow_up_tables import report
from tests.core.report.test_pdf import pages_text
from tests.core.report.test_tables import CARD, NOW, make_volume


def test_a_follow_up_reading_adds_a_comparison_page(tmp_path):
    written = report()
    path = write_pdf(written, make_volume(), tmp_path / "report.pdf")
    pages = pages_text(path)
    assert len(pages) == 2 + len(written.nodules)  # summary, comparison, one page per nodule
    comparison = pages[1]
    assert "Comparison with the prior study (2 nodules)" in comparison
    assert "100 mm³, 6.0 mm" in comparison and "200 mm³, 8.0 mm" in comparison
    assert "+100 %" in comparison and "365 days" in comparison and "growing" in comparison
    assert "new" in comparison and "N3" not in comparison  # outside the reading: not in the table


def test_rows_say_new_and_unmeasured_pairs_plainly():
    by_id = {n.marker.id: n for n in report().nodules}
    assert comparison_row(by_id["m2"])[6] == "new"
    paired = comparison_row(by_id["m1"])
    assert paired[1] == "p1" and paired[5] == "365 days" and paired[7] == by_id["m1"].lung_rads.category


def test_without_a_follow_up_reading_there_is_no_comparison_page(tmp_path):
    from core.nodule.markers import NoduleMarker

    plain = build_report(
        make_volume(), [NoduleMarker("m1", "N1", (0.0, 0.0, 11.0), 6.0)], {}, {}, CARD, now=NOW
    )
    pages = pages_text(write_pdf(plain, make_volume(), tmp_path / "plain.pdf"))
    assert len(pages) == 2 and not any("Comparison with the prior study" in p for p in pages)
