"""DICOM SR export (TID 1500, Comprehensive 3D SR): highdicom reads back the same nodules and values,
dciodvfy (dicom3tools) finds no errors and dsr2xml (dcmtk) parses it, for 0, 4 and 30 nodules.

The validators come from ``scripts/system-packages.sh``; without them those tests skip, except under
CI=true where their absence fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from dataclasses import replace
from pathlib import Path

import highdicom as hd
import pydicom
import pytest
from highdicom.sr.utils import find_content_items
from pydicom.sr.codedict import codes

from core.nodule.labels import NoduleLabel
from core.nodule.markers import NoduleMarker
from core.nodule.prediction import NoduleResult
from core.nodule.ratings import ATTRIBUTES
from core.report import sr as srmod
from core.report.anonymise import anonymised, new_salt, remap_uid
from core.report.content import build_report
from tests.dicom_factory import write_series

CARD = {
    "name": "MTMR-Net",
    "version": "1.2.0",
    "trained_on": "LIDC-IDRI training split",
    "intended_use": "research",
    "weights_sha256": "ab" * 32,
}
ATTRS = {
    "subtlety": 4.2, "internal_structure": 1.1, "calcification": 5.8, "sphericity": 3.3,
    "margin": 3.9, "lobulation": 2.1, "spiculation": 3.7, "texture": 4.6,
}  # fmt: skip


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (sh scripts/system-packages.sh installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run this test")
        pytest.skip(reason)
    return path


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) of dciodvfy on ``path``."""
    out = subprocess.run([_tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=120)
    lines = (out.stdout + out.stderr).splitlines()
    return [x for x in lines if x.startswith("Error")], [x for x in lines if x.startswith("Warning")]


def assert_valid(path: Path) -> None:
    errors, _ = dciodvfy(path)
    assert errors == []
    parsed = subprocess.run([_tool("dsr2xml"), str(path)], capture_output=True, text=True, timeout=120)
    assert parsed.returncode == 0, parsed.stderr
    assert "<report" in parsed.stdout


def markers(n: int) -> list[NoduleMarker]:
    # inside the factory's volume: x -10..12, y -12..13, z 0..12.5 mm
    return [
        NoduleMarker(
            id=f"marker-{i}",
            name=f"N{i + 1}",
            centre_mm=(-8.0 + (i % 10) * 2.0, -10.0 + (i // 10) * 5.0, 2.5 + (i % 4) * 2.5),
            diameter_mm=4.0 + (i % 12) * 1.5,
        )
        for i in range(n)
    ]


def make_report(volume, n: int, reader_name="Jane Müller", labels=None, analysed=None, card=CARD):
    ms = markers(n)
    analysed = analysed if analysed is not None else {m.id for m in ms}
    results = {
        m.id: NoduleResult(m.id, round(0.05 + 0.03 * i, 4), round(0.01 + 0.002 * i, 4), dict(ATTRS))
        for i, m in enumerate(ms)
        if m.id in analysed
    }
    return build_report(volume, ms, results, labels or {}, card, reader_name=reader_name)


@pytest.fixture(scope="module")
def four(series, tmp_path_factory):
    """N1 analysed and confirmed by the reader, N2 analysed, N3 not analysed, N4 not analysed but with
    an LIDC label."""
    files, volume = series
    labels = {
        "marker-0": NoduleLabel(malignancy=4.0, attributes={"spiculation": 5.0, "texture": 3.0}, reader="JM"),
        "marker-3": NoduleLabel(malignancy=2.5, attributes={"margin": 4.5}, source="lidc"),
    }
    report = make_report(volume, 4, labels=labels, analysed={"marker-0", "marker-1"})
    path = srmod.write_sr(report, files, tmp_path_factory.mktemp("sr") / "report.dcm")
    return report, path


def by_uid(sr) -> dict:
    return {str(g.tracking_uid): g for g in sr.content.get_planar_roi_measurement_groups()}


def measured(group, concept, method: str | None) -> list[float]:
    return [
        m.value
        for m in group.get_measurements(name=concept)
        if (m.method.value if m.method is not None else None) == method
    ]


def children(measurement, code_value: str) -> list:
    return [c for c in measurement[0].ContentSequence if c.ConceptNameCodeSequence[0].CodeValue == code_value]


def test_read_back_has_the_same_nodules_and_values(four, series):
    report, path = four
    sr = hd.sr.srread(path)
    assert isinstance(sr, hd.sr.Comprehensive3DSR) and sr.Modality == "SR"
    groups = by_uid(sr)
    assert list(groups) == [n.tracking_uid for n in report.nodules]  # the report's order (rank)
    frame = report.study["frame_of_reference_uid"]
    for nodule in report.nodules:
        group = groups[nodule.tracking_uid]
        assert group.tracking_identifier == nodule.marker.name
        assert group.finding_type == codes.SCT.Nodule
        assert [s.value.value for s in group.finding_sites] == [codes.SCT.Lung.value]
        roi = group.roi
        assert roi.graphic_type == hd.sr.GraphicTypeValues3D.POINT and roi.frame_of_reference_uid == frame
        assert roi.value[0] == pytest.approx(nodule.marker.centre_mm, abs=1e-3)
        assert measured(group, codes.SCT.Diameter, None) == [pytest.approx(nodule.marker.diameter_mm)]
        result = nodule.result
        probability = measured(group, codes.DCM.ProbabilityOfCancer, "MODEL")
        model_scores = {n: measured(group, srmod.RATING_CODES[n], "MODEL") for n in ATTRIBUTES}
        lung_rads = group.get_qualitative_evaluations(name=srmod.LUNG_RADS)
        if result is None:
            assert probability == [] and all(v == [] for v in model_scores.values()) and lung_rads == []
        else:
            assert probability == [pytest.approx(result.malignancy)]
            assert model_scores == {n: [pytest.approx(result.attributes[n])] for n in ATTRIBUTES}
            (measurement,) = group.get_measurements(name=codes.DCM.ProbabilityOfCancer)
            (sd,) = children(measurement, codes.SCT.StandardDeviation.value)
            assert float(sd.MeasuredValueSequence[0].NumericValue) == pytest.approx(result.uncertainty)
            parameters = [c.TextValue for c in children(measurement, "111002")]
            assert "trained on LIDC-IDRI training split" in parameters
            assert [c.TextValue for c in children(measurement, "111001")] == ["MTMR-Net"]
            assert [q.value.value for q in lung_rads] == [f"LUNGRADS-{nodule.lung_rads.category}"]
        label = nodule.reader
        method = {"reader": "READER", "lidc": "LIDC"}[label.source] if label else None
        expected = ({"malignancy": label.malignancy} | dict(label.attributes)) if label else {}
        for name in ("malignancy", *ATTRIBUTES):
            confirmed = measured(group, srmod.RATING_CODES[name], method) if method else []
            assert confirmed == ([pytest.approx(expected[name])] if name in expected else [])


def test_reader_values_are_told_apart_from_the_model(four):
    report, path = four
    sr = hd.sr.srread(path)
    (n1,) = [n for n in report.nodules if n.marker.name == "N1"]
    assert n1.reader is not None and n1.result is not None
    first = by_uid(sr)[n1.tracking_uid]
    spiculation = srmod.RATING_CODES["spiculation"]
    assert measured(first, spiculation, "MODEL") == [pytest.approx(ATTRS["spiculation"])]
    assert measured(first, spiculation, "READER") == [5.0]
    for m in first.get_measurements(name=spiculation):
        has_algorithm = bool(children(m, "111001"))
        assert has_algorithm == (m.method.value == "MODEL")
    # the Lung-RADS category used the reader's texture (3 = part-solid), as the report says
    assert n1.lung_rads.texture == "part-solid"


def test_study_context_observers_and_evidence(four, series):
    report, path = four
    files, _ = series
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == pydicom.uid.Comprehensive3DSRStorage
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert ds.StudyInstanceUID == report.study["study_uid"] and ds.PatientID == "TEST-001"
    assert ds.SeriesNumber == srmod.DEFAULT_SERIES_NUMBER and ds.Manufacturer == "MTMR Reader"
    (scheme,) = ds.CodingSchemeIdentificationSequence
    assert scheme.CodingSchemeDesignator == "99MTMR"
    assert scheme.CodingSchemeResponsibleOrganization == "MTMR Reader project"
    sr = hd.sr.srread(path)
    instances = {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}
    assert {e[2] for e in sr.get_evidence()} == instances
    assert {e[1] for e in sr.get_evidence()} == {report.study["series_uid"]}
    (library,) = find_content_items(ds, name=codes.DCM.ImageLibrary)
    (group,) = library.ContentSequence  # one group: the series shares its frame of reference and geometry
    entries = [item for item in group.ContentSequence if item.ValueType == "IMAGE"]
    assert {item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for item in entries} == instances
    (person,) = find_content_items(ds, name=codes.DCM.PersonObserverName, recursive=True)
    assert str(person.PersonName) == "Jane Müller^"
    (device,) = find_content_items(ds, name=codes.DCM.DeviceObserverName, recursive=True)
    assert device.TextValue == "MTMR-Net"
    (procedure,) = find_content_items(ds, name=codes.DCM.ProcedureReported)
    assert procedure.ConceptCodeSequence[0].CodeValue == "169069000"
    (study_rads,) = find_content_items(ds, name=srmod.STUDY_LUNG_RADS, recursive=True)
    assert study_rads.ConceptCodeSequence[0].CodeValue == f"LUNGRADS-{report.study_lung_rads.category}"
    rules = {item.TextValue for item in find_content_items(ds, name=srmod.LUNG_RADS_RULE, recursive=True)}
    assert rules == {n.lung_rads.rule for n in report.nodules if n.lung_rads}
    (disclaimer,) = find_content_items(ds, name=srmod.DISCLAIMER, recursive=True)
    assert disclaimer.TextValue == report.disclaimer


def test_dciodvfy_finds_no_errors_and_dsr2xml_parses(four):
    assert_valid(four[1])


def test_zero_nodules_is_a_valid_report_without_groups(series, tmp_path):
    files, volume = series
    report = make_report(volume, 0, reader_name="")
    path = srmod.write_sr(report, files, tmp_path / "empty.dcm")
    sr = hd.sr.srread(path)
    assert sr.content.get_planar_roi_measurement_groups() == []
    assert find_content_items(pydicom.dcmread(path), name=codes.DCM.PersonObserverName, recursive=True) == []
    assert len(sr.get_evidence()) == len(files)
    assert_valid(path)


def test_thirty_nodules(series, tmp_path):
    files, volume = series
    report = make_report(volume, 30, card={"name": "MTMR-Net"})  # an old card: no version, no hash
    path = srmod.write_sr(report, files, tmp_path / "thirty.dcm", series_number=77, instance_number=3)
    sr = hd.sr.srread(path)
    assert (sr.SeriesNumber, sr.InstanceNumber) == (77, 3)
    groups = by_uid(sr)
    assert list(groups) == [n.tracking_uid for n in report.nodules] and len(set(groups)) == 30
    for nodule in report.nodules:
        group = groups[nodule.tracking_uid]
        probability = measured(group, codes.DCM.ProbabilityOfCancer, "MODEL")
        assert probability == [pytest.approx(nodule.result.malignancy)]
        assert measured(group, codes.SCT.Diameter, None) == [pytest.approx(nodule.marker.diameter_mm)]
    (uid,) = find_content_items(pydicom.dcmread(path), name=codes.DCM.DeviceObserverUID, recursive=True)
    assert uid.UID.startswith("2.25.")
    assert_valid(path)
    assert list(tmp_path.iterdir()) == [path]  # written atomically: no temporary file left


def test_anonymised_report_carries_no_identity_or_source_uids(series, tmp_path):
    files, volume = series
    report = make_report(volume, 2)
    salt = new_salt()
    sources = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    anonymous = anonymised(report, salt)
    # the instance UIDs as the CLI adds them: remapped as anonymise_dataset remaps the CT's own copies
    instance_map = {ds.SOPInstanceUID: remap_uid(ds.SOPInstanceUID, salt) for ds in sources}
    anonymous = replace(anonymous, uid_map=anonymous.uid_map | instance_map)
    path = srmod.write_sr(anonymous, files, tmp_path / "anonymous.dcm")
    data = path.read_bytes()
    secrets = {"Test^Patient", "TEST-001", "Jane", report.study["study_uid"], report.study["series_uid"]}
    secrets |= {ds.SOPInstanceUID for ds in sources} | {ds.FrameOfReferenceUID for ds in sources}
    secrets |= {n.tracking_uid for n in report.nodules}
    assert [s for s in secrets if s.encode() in data] == []
    ds = pydicom.dcmread(path)
    assert ds.PatientIdentityRemoved == "YES" and ds.PatientName == "" and ds.PatientID == ""
    assert ds.StudyInstanceUID == anonymous.study["study_uid"]
    sr = hd.sr.srread(path)
    assert {e[1] for e in sr.get_evidence()} == {anonymous.study["series_uid"]}
    assert {e[2] for e in sr.get_evidence()} == set(instance_map.values())
    groups = sr.content.get_planar_roi_measurement_groups()
    assert [str(g.tracking_uid) for g in groups] == [n.tracking_uid for n in anonymous.nodules]
    assert {g.roi.frame_of_reference_uid for g in groups} == {anonymous.study["frame_of_reference_uid"]}
    assert_valid(path)


def test_other_series_are_skipped_and_a_wrong_series_refused(series, tmp_path):
    files, volume = series
    other = write_series(tmp_path / "other", n=2)
    report = make_report(volume, 1)
    datasets = [pydicom.dcmread(f) for f in [*files, *other]]
    sr = srmod.build_sr(report, datasets)
    assert len(sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence) == 1
    with pytest.raises(ValueError, match="no instance of the report's CT series"):
        srmod.build_sr(report, [pydicom.dcmread(f) for f in other])


def test_writing_the_sr_raises_no_pydicom_warning(series, tmp_path):
    """Every attribute is set as its VR allows (SoftwareVersions, LO VM 1-n, as a list, not a tuple):
    pydicom has nothing to warn about, so a reader's log stays clean."""

    files, volume = series
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = srmod.write_sr(make_report(volume, 1), files, tmp_path / "report.dcm")
    assert [str(w.message) for w in caught] == []
    assert list(pydicom.dcmread(path).SoftwareVersions)[-1].startswith("highdicom ")


def test_a_long_reader_name_fits_the_person_name_limit():
    """Review: each component was cut to 64 characters, but PN allows 64 for the whole group
    (carets included): a 200-character reader name gave a 65-character PN and a pydicom warning."""
    from core.report.sr import _person_name

    assert len(_person_name("x" * 200)) == 64 and _person_name("x" * 200).endswith("x^")
    assert len(_person_name("^".join(["y" * 30] * 5))) == 64
    assert _person_name("Müller^Jane") == "Müller^Jane" and _person_name("Jane Müller") == "Jane Müller^"


def test_a_one_part_patient_name_is_not_quoted_in_a_warning(doe_series, tmp_path):
    """Review (issue 17): highdicom warns about a person name without a caret and quotes it, so a
    patient named DOE in the CT header was printed to the terminal and the logs when the SR was
    written. The name is still copied into the SR."""
    files, volume = doe_series
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = srmod.write_sr(make_report(volume, 1), files, tmp_path / "report.dcm")
    assert [str(w.message) for w in caught if "DOE" in str(w.message)] == []
    assert pydicom.dcmread(path).PatientName == "DOE"


def test_a_source_that_is_not_dicom_is_named(series, tmp_path):
    """A file among the sources that is not DICOM: a message naming it, not pydicom's bare
    InvalidDicomError; nothing written."""
    files, volume = series
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    with pytest.raises(ValueError, match=r"^notes\.txt: not a readable DICOM file \(.+\)$"):
        srmod.write_sr(make_report(volume, 1), [*files, bad], tmp_path / "report.dcm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_interval_and_out_of_distribution_warnings_sit_beside_the_probability(series, tmp_path):
    files, volume = series
    ms = markers(2)
    results = {
        ms[0].id: NoduleResult(ms[0].id, 0.34, 0.01, dict(ATTRS), interval=(0.08, 0.47)),
        ms[1].id: NoduleResult(
            ms[1].id, 0.2, 0.01, dict(ATTRS), interval=(0.15, 0.25), warnings=("modality MR, not CT",)
        ),
    }
    report = build_report(volume, ms, results, {}, CARD, reader_name="")
    path = srmod.write_sr(report, files, tmp_path / "notes.dcm")
    assert_valid(path)
    groups = by_uid(hd.sr.srread(path))

    def texts(nodule, code_value):
        items = groups[nodule.tracking_uid][0].ContentSequence
        return [c.TextValue for c in items if c.ConceptNameCodeSequence[0].value == code_value]

    first, second = (next(n for n in report.nodules if n.marker.id == m.id) for m in ms)
    [interval] = texts(first, "MALIGNANCYINTERVAL")
    assert interval.startswith("p = 0.34 (0.08-0.47)") and "indeterminate" in interval
    assert "not a confidence interval" in interval and texts(first, "OODWARNING") == []
    assert "indeterminate" not in texts(second, "MALIGNANCYINTERVAL")[0]
    assert texts(second, "OODWARNING") == ["score not reliable: modality MR, not CT"]
