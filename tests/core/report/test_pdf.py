"""The PDF report: pages, what they say, that poppler renders them, and the pictures on them.

pdftoppm and pdftotext come from poppler-utils (``sh scripts/system-packages.sh``); without them the
tests that need them skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.nodule.labels import NoduleLabel
from core.nodule.markers import NoduleMarker
from core.nodule.prediction import NoduleResult
from core.nodule.ratings import ATTRIBUTES, RATING_MAX
from core.report import pdf as pdf_module
from core.report.content import build_report
from core.report.images import key_image, triptych, view_image
from core.report.pdf import write_pdf
from core.volume import CTVolume, VolumeMetadata

CARD = {
    "name": "test-model",
    "version": "7",
    "trained_on": "synthetic spheres",
    "intended_use": "tests",
    "weights_sha256": "ab" * 32,
}
PATIENT = {"patient_name": "DOE^JANE", "patient_id": "P-12345", "patient_birth_date": "19500102"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} (poppler-utils) is missing"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run this test (sh scripts/system-packages.sh installs it)")
        pytest.skip(reason)
    return path


def pages_text(path: Path, layout: bool = False) -> list[str]:
    """The text of each page (pdftotext separates pages with form feeds): with ``layout`` as laid out,
    line by line; otherwise in reading order with all white space as single spaces."""
    command = [_tool("pdftotext"), *(["-layout"] if layout else []), str(path), "-"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    pages = out.split("\f")
    pages = pages[:-1] if pages and not pages[-1].strip() else pages
    return pages if layout else [" ".join(page.split()) for page in pages]


def render(path: Path, folder: Path) -> list[Path]:
    """Every page at 50 dpi through pdftoppm; each must be a real picture."""
    folder.mkdir(exist_ok=True)
    subprocess.run(
        [_tool("pdftoppm"), "-r", "50", "-png", str(path), str(folder / "page")], check=True, timeout=60
    )
    pngs = sorted(folder.glob("page-*.png"))
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000, png
    return pngs


def synthetic_volume(**metadata) -> CTVolume:
    """A small chest-like block: lung (-800 HU) in soft tissue, slices 2 mm, pixels 1 mm."""
    array = np.full((40, 64, 64), 40, np.int16)
    array[4:36, 8:56, 6:58] = -800
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    affine[:3, 3] = (-32.0, -32.0, -40.0)
    meta = VolumeMetadata(
        **{
            "study_uid": "1.2.3",
            "series_uid": "1.2.3.4",
            "study_date": "20240301",
            "study_description": "Synthetic chest",
            "patient_sex": "F",
            **metadata,
        }
    )
    return CTVolume(array, affine, meta)


def synthetic_report(count: int, unanalysed: int = 0, **metadata):
    """``count`` markers on the synthetic volume, the last ``unanalysed`` without results, every third
    analysed one with a reader label."""
    volume = synthetic_volume(**metadata)
    rng = np.random.default_rng(count)
    markers, results, labels, locations = [], {}, {}, {}
    for i in range(count):
        centre = (float(rng.uniform(-20, 20)), float(rng.uniform(-18, 18)), float(rng.uniform(-30, 24)))
        marker = NoduleMarker(f"id{i}", f"S{i + 1}", centre, float(rng.uniform(4, 24)))
        markers.append(marker)
        locations[marker.id] = f"{'left' if centre[0] > 0 else 'right'} middle zone, slice {i + 1}"
        if i >= count - unanalysed:
            continue
        attributes = {name: float(rng.uniform(1, RATING_MAX[name])) for name in ATTRIBUTES}
        results[marker.id] = NoduleResult(
            marker.id, float(rng.uniform()), float(rng.uniform(0, 0.1)), attributes
        )
        if i % 3 == 0:
            labels[marker.id] = NoduleLabel(malignancy=4.0, attributes={"spiculation": 5.0}, reader="Dr Who")
    report = build_report(volume, markers, results, labels, CARD, reader_name="Dr Who", locations=locations)
    return report, volume


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo study read by the demo model, with one reader label; its PDF."""
    from core.imaging.location import LungMap
    from core.imaging.open_study import open_study
    from core.model.inference import Predictor
    from core.model.store import DEMO_MODEL
    from core.phantom.demo import demo_markers, demo_study

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MTMR_READER_HOME", str(tmp_path_factory.mktemp("demo-home")))
        folder = demo_study()
        volume, _ = open_study(folder)
        markers = [
            NoduleMarker(m["name"], m["name"].upper(), tuple(m["centre_mm"]), m["diameter_mm"])
            for m in demo_markers(folder)
        ]
    predictor = Predictor(DEMO_MODEL, device="cpu")
    results = {r.id: r for r in predictor.predict(volume, [m.to_inference() for m in markers])}
    lungs = LungMap(volume)
    locations = {m.id: lungs.describe(m.centre_mm).text for m in markers}
    labels = {markers[0].id: NoduleLabel(malignancy=2.0, attributes={"texture": 5.0}, reader="Dr Demo")}
    report = build_report(volume, markers, results, labels, predictor.card, "Dr Demo", locations)
    path = write_pdf(report, volume, tmp_path_factory.mktemp("demo-pdf") / "demo.pdf")
    return report, volume, path


def test_demo_report_has_a_summary_and_a_page_per_nodule(demo, tmp_path):
    report, _, path = demo
    assert path.read_bytes()[:5] == b"%PDF-"
    assert path.stat().st_size < 3_000_000
    assert [p.name for p in path.parent.iterdir()] == ["demo.pdf"]  # atomic: no temporary file left
    texts = pages_text(path)
    assert len(texts) == 1 + len(report.nodules) == 7
    assert len(render(path, tmp_path / "png")) == 7
    first = texts[0]
    assert "PHANTOM, TEST 2026" in first and "PHANTOM-test-2026" in first and "2026-01-01" in first
    assert report.study_lung_rads is not None
    assert f"Study Lung-RADS v2022: {report.study_lung_rads.category}" in first
    assert report.study_lung_rads.follow_up in " ".join(first.split())
    for nodule in report.nodules:
        assert nodule.marker.name in first and nodule.lung_rads is not None
    for nodule, text in zip(report.nodules, texts[1:], strict=True):  # nodule pages in rank order
        assert f"Nodule {nodule.marker.name}" in text
        assert f"rank {nodule.rank} of 6" in text
        assert nodule.lung_rads.category in text and "Follow-up" in text
        assert f"{100 * nodule.result.malignancy:.0f}%" in text
        assert "Axial" in text and "Coronal" in text and "Sagittal" in text
        assert "PHANTOM, TEST 2026" in text  # every page says whose it is
    confirmed = next(n for n in report.nodules if n.reader is not None)
    page = texts[1 + report.nodules.index(confirmed)]
    assert "reader-confirmed: 5 (solid)" in page and "Reader-confirmed malignancy: 2 of 5" in page
    for i, text in enumerate(texts, start=1):
        assert "mtmr-compact" in text and report.model.version in text
        # the shipped card's longer "trained on" once pushed the weights' hash off the footer
        assert f"weights sha256 {report.model.weights_sha256[:12]}" in text
        assert "not for clinical decisions" in text
        assert f"Page {i} of 7" in text


def test_anonymised_report_names_nobody(demo, tmp_path):
    report, volume, _ = demo
    blank = {"name": "", "id": "", "birth_date": "", "sex": ""}
    for patient in (blank, report.patient):  # anonymised wins even over fields left filled in
        path = write_pdf(replace(report, patient=patient, anonymised=True), volume, tmp_path / "anon.pdf")
        text = "\n".join(pages_text(path))
        assert "PHANTOM, TEST" not in text and "PHANTOM-test" not in text and "PHANTOM^" not in text
        assert "Patient: anonymised" in text
        assert "PHANTOM" not in path.read_bytes().decode("latin-1")  # nor in the metadata


def test_a_study_without_nodules_is_one_page(tmp_path):
    report, volume = synthetic_report(0, **PATIENT)
    assert report.nodules == () and report.study_lung_rads is None
    path = write_pdf(report, volume, tmp_path / "none.pdf")
    texts = pages_text(path)
    assert len(texts) == 1 and len(render(path, tmp_path / "png")) == 1
    assert "No nodule markers" in texts[0] and "no Lung-RADS category" in texts[0]
    assert "DOE, JANE" in texts[0] and "P-12345" in texts[0] and "1950-01-02" in texts[0]
    assert "test-model 7" in texts[0] and "not for clinical decisions" in texts[0]


def test_thirty_nodules_fit_the_summary_and_get_a_page_each(tmp_path):
    report, volume = synthetic_report(30, unanalysed=2, **PATIENT)
    path = write_pdf(report, volume, tmp_path / "thirty.pdf")
    texts = pages_text(path)
    assert len(texts) == 31 and len(render(path, tmp_path / "png")) == 31
    table = pages_text(path, layout=True)[0].splitlines()
    for nodule in report.nodules:  # one table row each: name, Lung-RADS category ("-": not assessed)
        row = next(line.split() for line in table if f" {nodule.marker.name} " in line)
        assert (nodule.lung_rads.category if nodule.lung_rads else "-") in row
    assert len({n.lung_rads.category for n in report.nodules if n.lung_rads}) >= 3
    for nodule, text in zip(report.nodules, texts[1:], strict=True):
        assert f"Nodule {nodule.marker.name}" in text and "test-model 7" in text
        if nodule.result is None:
            assert "not analysed" in text and "Lung-RADS v2022 (estimate)" in text and "Not assessed" in text
        else:
            assert f"rank {nodule.rank} of 28" in text and nodule.lung_rads.category in text
        if nodule.reader is not None:
            assert "reader-confirmed: 5 (marked spiculation)" in text
            assert "Reader-confirmed malignancy: 4 of 5" in text


def test_explanation_panel_and_bad_pictures(tmp_path):
    report, volume = synthetic_report(2, **PATIENT)
    first = report.nodules[0].marker.id
    heat = np.zeros((64, 64, 3), np.uint8)
    heat[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)
    path = write_pdf(report, volume, tmp_path / "cam.pdf", explanation_images={first: heat})
    texts = pages_text(path)
    assert len(texts) == 3 and "Grad-CAM (colour)" in texts[1] and "Grad-CAM" not in texts[2]
    with pytest.raises(ValueError, match="uint8"):
        write_pdf(report, volume, tmp_path / "bad.pdf", explanation_images={first: heat.astype(np.float32)})
    assert not (tmp_path / "bad.pdf").exists()


def test_core_font_fallback_writes_latin1(tmp_path, monkeypatch):
    """Without DejaVu the PDF uses Helvetica: accents dropped where Latin-1 lacks them, "?" for the rest."""
    monkeypatch.setattr(pdf_module, "_FONT_DIRS", ())
    report, volume = synthetic_report(1, patient_name="ŌTSUKA^JIRŌ", patient_id="山田-7")
    path = write_pdf(report, volume, tmp_path / "core.pdf")
    texts = pages_text(path)
    assert len(texts) == 2
    assert "OTSUKA, JIRO" in texts[0] and "??-7" in texts[0]
    assert "±" in texts[1]  # Latin-1 is kept (the summary table shows the interval, the nodule page ±)


def test_key_image_and_triptych_show_the_nodule_ringed_and_radiologically():
    volume = synthetic_volume()
    array = np.array(volume.array)
    array[20, 32, 32] = 400  # nodule voxel at the centre: (x, y, z) = (32, 32, 20) -> LPS (0, 0, 0)
    array[18:23, 30:35, 30:35] = 60
    array[20, 31:34, 44:47] = 300  # a landmark at the patient's left (+x)
    array[19:22, 18:23, 31:34] = 300  # ... one anterior (-y)
    array[28:31, 31:34, 31:34] = 300  # ... one superior (+z)
    volume = CTVolume(array, volume.affine, volume.metadata)
    report = build_report(volume, [NoduleMarker("a", "A", (0.0, 0.0, 0.0), 6.0)], {}, {}, CARD)
    nodule = report.nodules[0]
    key = key_image(volume, nodule, size_px=200, crop_mm=40.0)
    assert key.shape == (200, 200, 3) and key.dtype == np.uint8
    assert np.array_equal(key[..., 0], key[..., 1])  # grey: nothing told by colour
    grey = key[..., 0].astype(int)
    assert grey[100, 100] > 150  # the nodule (60 HU at W1500/L-600 is bright)
    ring = grey[100, 100 + 16 : 100 + 30]  # radius 15 px + gap: a light then a dark line
    assert ring.max() >= 250 and ring.min() <= 5 and np.argmax(ring) < np.argmin(ring)
    assert grey[100, 100 + 60] > 150 > grey[100, 100 - 60]  # patient's left on the image's right
    assert grey[100 - 50, 100] > 150 > grey[100 + 50, 100]  # anterior at the top
    strip = triptych(volume, nodule, size_px=100, crop_mm=40.0, gap_px=4)
    assert strip.shape == (100, 308, 3)
    assert np.all(strip[:, 100:104] == 255)  # white gaps
    coronal = strip[:, 104:204, 0].astype(int)
    assert coronal[50 - 42, 50] > 150 > coronal[50 + 42, 50]  # superior at the top (z + 17 mm)
    sagittal = strip[:, 208:, 0].astype(int)
    assert sagittal[50, 50 - 30] > 150 > sagittal[50, 50 + 30]  # anterior on the left


def test_views_do_not_depend_on_how_the_series_was_stored():
    volume = synthetic_volume()
    array = np.array(volume.array)
    array[10:30, 20:28, 36:50] = 200
    volume = CTVolume(array, volume.affine)
    flip = np.diag([-1.0, 1.0, -1.0, 1.0])  # columns right-to-left, slices feet-first
    flip[:3, 3] = [63, 0, 39]
    stored = CTVolume(np.ascontiguousarray(array[::-1, :, ::-1]), volume.affine @ flip)
    for view in ("axial", "coronal", "sagittal"):
        a = view_image(volume, (3.0, -5.0, 2.0), 8.0, view, 120, 50.0)
        b = view_image(stored, (3.0, -5.0, 2.0), 8.0, view, 120, 50.0)
        assert np.abs(a.astype(int) - b).max() <= 1, view  # the same picture, to rounding
    outside = view_image(volume, (0.0, 0.0, 500.0), 8.0, "axial", 32, 50.0, ring=False)
    assert not outside.any()  # a slice beyond the scan is black


def test_interval_indeterminate_and_out_of_distribution_are_printed(tmp_path):
    report, volume = synthetic_report(2, **PATIENT)
    first, second = (n.result for n in report.nodules)
    results = {
        first.id: replace(first, malignancy=0.34, interval=(0.08, 0.47)),
        second.id: replace(second, warnings=("slice thickness 5.00 mm outside the model's 0.83-1.88 mm",)),
    }
    markers = [n.marker for n in report.nodules]
    report = build_report(volume, markers, results, {}, CARD, reader_name="Dr Who")
    texts = [" ".join(t.split()) for t in pages_text(write_pdf(report, volume, tmp_path / "r.pdf"))]
    assert "34% (8-47%) ?" in texts[0] and "out of distribution" in texts[0]
    pages = {n.marker.id: texts[1 + i] for i, n in enumerate(report.nodules)}
    assert "interval 8-47%" in pages[first.id] and "Indeterminate" in pages[first.id]
    ood = pages[second.id]
    assert "Out of distribution" in ood and "slice thickness 5.00 mm" in ood and "not reliable" in ood
