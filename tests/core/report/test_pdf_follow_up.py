"""The printable report with a follow-up reading: a comparison page after the summary, one row per
nodule of the reading (prior and current size, change, VDT, trend, Lung-RADS with priors), and with
the prior study's images each paired nodule's prior and current key images with their dates."""

from __future__ import annotations

import datetime as dt
import subprocess
from dataclasses import replace

import numpy as np

from core.nodule.markers import NoduleMarker
from core.report.content import build_report
from core.report.pdf import write_pdf
from core.report.pdf_follow_up import PriorImages, comparison_row
from core.volume import CTVolume
from tests.core.report.test_follow_up_tables import follow_up, report
from tests.core.report.test_pdf import _tool, pages_text
from tests.core.report.test_tables import CARD, NOW, make_volume


def images_per_page(path) -> dict[int, int]:
    """How many images each page draws (poppler's pdfimages lists every one drawn)."""
    out = subprocess.run(
        [_tool("pdfimages"), "-list", str(path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    counts: dict[int, int] = {}
    for line in out.splitlines()[2:]:
        page = int(line.split()[0])
        counts[page] = counts.get(page, 0) + 1
    return counts


def prior_images(reading=None) -> PriorImages:
    """The prior study: the current grid, darker (so its pictures differ from the current ones)."""
    current = make_volume()
    prior = CTVolume(np.full(current.shape, -500, np.int16), current.affine, current.metadata)
    return PriorImages(prior, reading or follow_up())


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
    from core.measure.measurement import REPEATABILITY_VOLUME_PERCENT

    limit = (
        f"Trend 'within error': a change within measurement error, under {REPEATABILITY_VOLUME_PERCENT:g} %"
    )
    assert limit in comparison


def test_a_change_within_measurement_error_fits_its_column():
    from core.followup.growth import TimePoint, growth

    nodule = next(n for n in report().nodules if n.marker.id == "m1")
    small = growth(TimePoint(dt.date(2025, 3, 1), 6.0, 100.0), TimePoint(dt.date(2026, 3, 1), 6.2, 110.0))
    assert small.trend == "change within measurement error"
    row = comparison_row(replace(nodule, prior=replace(nodule.prior, growth=small)))
    assert row[6] == "within error"  # the full words do not fit the column; the note defines them


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


def test_the_prior_study_adds_each_pairs_prior_and_current_key_images_with_their_dates(tmp_path):
    written = report()
    path = write_pdf(written, make_volume(), tmp_path / "report.pdf", prior=prior_images())
    pages = pages_text(path)
    assert len(pages) == 2 + len(written.nodules)  # no page more for one pair
    comparison = pages[1]
    assert "Key images: prior (left) and current (right)" in comparison and "N1 (prior p1)" in comparison
    assert "Prior 2025-03-01" in comparison and "Current 2026-03-01" in comparison
    counts = images_per_page(path)
    assert counts.get(2) == 2  # one pair (m1): its prior and current images; m2 is new: none
    plain = write_pdf(written, make_volume(), tmp_path / "plain.pdf")  # the same report, no prior study
    assert images_per_page(plain).get(2, 0) == 0 and "Key images" not in pages_text(plain)[1]
    assert {p: n for p, n in counts.items() if p != 2} == images_per_page(plain)  # nodule pages as before


def test_many_pairs_run_over_to_another_page_and_an_anonymised_report_has_no_dates(tmp_path):
    markers = [NoduleMarker(f"m{k}", f"N{k}", (0.0, 0.0, 5.0 + 3 * k), 6.0) for k in range(1, 8)]
    (pair,) = follow_up().pairs
    pairs = tuple(replace(pair, prior_id=f"p{k}", current_id=f"m{k}") for k in range(1, 8))
    reading = replace(follow_up(), pairs=pairs, new=())
    written = build_report(make_volume(), markers, {}, {}, CARD, now=NOW, follow_up=reading)
    path = write_pdf(written, make_volume(), tmp_path / "many.pdf", prior=prior_images(reading))
    pages = pages_text(path)
    assert len(pages) == 3 + len(markers)  # the images carry on over a second comparison page
    counts = images_per_page(path)
    assert counts[2] + counts[3] == 2 * len(markers) and counts[3] > 0
    assert all(f"N{k} (prior p{k})" in pages[1] + pages[2] for k in range(1, 8))
    anonymous = write_pdf(
        replace(written, anonymised=True), make_volume(), tmp_path / "anon.pdf", prior=prior_images(reading)
    )
    text = " ".join(pages_text(anonymous)[1:3])
    assert "Current, 365 days later" in text and "2025-03-01" not in text and "2026-03-01" not in text


def test_a_report_without_a_follow_up_is_the_same_with_or_without_prior_images(tmp_path):
    plain = build_report(
        make_volume(), [NoduleMarker("m1", "N1", (0.0, 0.0, 11.0), 6.0)], {}, {}, CARD, now=NOW
    )
    without = write_pdf(plain, make_volume(), tmp_path / "without.pdf")
    given = write_pdf(plain, make_volume(), tmp_path / "with.pdf", prior=prior_images())
    assert without.read_bytes() == given.read_bytes()
