"""LIDC's readers' XML (``LidcReadMessage``): parsing real-format documents, refusing bad ones, writing
them back, and mapping them onto the annotation records so the nodule table's grouping applies."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from core.lidc.grouping import group_annotations
from core.lidc.table import nodules_of_scan
from core.lidc.xml import LidcXmlError, parse_lidc_xml, read_xml_header, to_annotations
from core.lidc.xml_writer import ExtraMark, lidc_xml_document, reading_sessions, write_lidc_xml
from tests.core.lidc.lidc_factory import annotation, contour, cube, scan, square_outline, z_of

SERIES = "1.3.6.1.4.1.14519.5.2.1.6279.6001.179049373636438705059720603192"
STUDY = "1.3.6.1.4.1.14519.5.2.1.6279.6001.298806137288633453246975630178"
SOP = "1.3.6.1.4.1.14519.5.2.1.6279.6001.{}"


def document(body: str, namespace: str | None = "http://www.nih.gov", root: str = "LidcReadMessage") -> str:
    """A read file laid out as LIDC's are (header fields in their order, values as they write them)."""
    xmlns = (
        f' xmlns="{namespace}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
        f' xsi:schemaLocation="{namespace} http://troll.rad.med.umich.edu/lidc/LidcReadMessage.xsd"'
        if namespace
        else ""
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<{root} uid="1.3.6.1.4.1.14519.5.2.1.6279.6001.1307390687803.0"{xmlns}>
  <ResponseHeader>
    <Version>1.8.1</Version>
    <MessageId>-421198203</MessageId>
    <DateRequest>2007-11-01</DateRequest>
    <TimeRequest>12:30:38</TimeRequest>
    <RequestingSite>removed</RequestingSite>
    <ServicingSite>removed</ServicingSite>
    <TaskDescription>Second unblinded read</TaskDescription>
    <CtImageFile>removed</CtImageFile>
    <SeriesInstanceUid>{SERIES}</SeriesInstanceUid>
    <DateService>2004-09-23</DateService>
    <TimeService>00:00:00</TimeService>
    <ResponseDescription>1 - Reading complete</ResponseDescription>
    <StudyInstanceUID>{STUDY}</StudyInstanceUID>
  </ResponseHeader>
{body}
</{root}>
"""


def roi(z: str, sop: str, inclusion: str, points) -> str:
    edges = "".join(f"<edgeMap><xCoord>{x}</xCoord><yCoord>{y}</yCoord></edgeMap>" for x, y in points)
    return (
        f"<roi><imageZposition>{z}</imageZposition><imageSOP_UID>{sop}</imageSOP_UID>"
        f"<inclusion>{inclusion}</inclusion>{edges}</roi>"
    )


CHARACTERISTICS = (
    "<characteristics><subtlety>5</subtlety><internalStructure>1</internalStructure>"
    "<calcification>6</calcification><sphericity>3</sphericity><margin>3</margin>"
    "<lobulation>3</lobulation><spiculation>4</spiculation><texture>5</texture>"
    "<malignancy>5</malignancy></characteristics>"
)
RING = square_outline(310, 350, 6)
HOLE = [(312, 352), (314, 352), (314, 354), (312, 354)]

SESSIONS = f"""
  <readingSession>
    <annotationVersion>3.12</annotationVersion>
    <servicingRadiologistID>540461523</servicingRadiologistID>
    <unblindedReadNodule>
      <noduleID>Nodule 001</noduleID>
      {CHARACTERISTICS}
      {roi("-125.000000 ", SOP.format(1), "TRUE", RING)}
      {roi("-127.500000", SOP.format(2), "TRUE", RING)}
      {roi("-127.500000", SOP.format(2), "FALSE", HOLE)}
    </unblindedReadNodule>
    <unblindedReadNodule>
      <noduleID>6</noduleID>
      {roi("-130.000000", SOP.format(3), "TRUE", [(100, 120)])}
    </unblindedReadNodule>
    <nonNodule>
      <nonNoduleID>2046</nonNoduleID>
      <imageZposition>-132.500000</imageZposition>
      <imageSOP_UID>{SOP.format(4)}</imageSOP_UID>
      <locus><xCoord>200</xCoord><yCoord>210</yCoord></locus>
    </nonNodule>
  </readingSession>
  <readingSession>
    <annotationVersion>3.12</annotationVersion>
    <servicingRadiologistID>anon</servicingRadiologistID>
    <unblindedReadNodule>
      <noduleID>IL057_127364</noduleID>
      {CHARACTERISTICS.replace("<malignancy>5<", "<malignancy>4<")}
      {roi("-125.000000", SOP.format(1), "TRUE", RING)}
      {roi("-122.500000", SOP.format(0), "TRUE", [(311, 351)])}
    </unblindedReadNodule>
  </readingSession>
"""
SLICE_Z = np.arange(-140.0, -110.0, 2.5)


def write(tmp_path, text: str, name: str = "069.xml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("namespace", ["http://www.nih.gov", "http://www.nih.gov/idri", None])
def test_parses_a_read_in_any_of_the_namespaces(tmp_path, namespace):
    message = parse_lidc_xml(write(tmp_path, document(SESSIONS, namespace)))
    assert message.series_uid == SERIES and message.study_uid == STUDY
    assert message.uid.endswith("1307390687803.0") and message.namespace == (namespace or "")
    first, second = message.sessions
    assert (first.reader, second.reader) == ("540461523", "anon")
    assert first.annotation_version == "3.12"
    nodule, small = first.nodules
    assert nodule.nodule_id == "Nodule 001" and not nodule.small
    assert nodule.ratings == {
        "subtlety": 5, "internal_structure": 1, "calcification": 6, "sphericity": 3, "margin": 3,
        "lobulation": 3, "spiculation": 4, "texture": 5, "malignancy": 5,
    }  # fmt: skip
    assert [r.z for r in nodule.rois] == [-125.0, -127.5, -127.5]  # a trailing space, as LIDC writes
    assert [r.inclusion for r in nodule.rois] == [True, True, False]
    assert nodule.rois[1].sop_uid == SOP.format(2)
    assert nodule.rois[0].points.dtype == np.int32 and nodule.rois[0].points.tolist() == [
        list(p) for p in RING
    ]
    assert nodule.rois[2].points.shape == (4, 2)
    # A nodule < 3 mm: no characteristics, one point; kept and flagged.
    assert small.nodule_id == "6" and small.ratings is None and small.small
    assert small.rois[0].points.tolist() == [[100, 120]]
    (non_nodule,) = first.non_nodules
    assert (non_nodule.non_nodule_id, non_nodule.z, non_nodule.point) == ("2046", -132.5, (200, 210))
    assert non_nodule.sop_uid == SOP.format(4)
    assert second.nodules[0].ratings["malignancy"] == 4 and second.non_nodules == ()


def test_characteristics_blank_or_zero_mean_not_rated(tmp_path):
    blank = CHARACTERISTICS.replace("<texture>5</texture>", "<texture></texture>")
    zeros = CHARACTERISTICS.replace("<malignancy>5<", "<malignancy>0<")
    body = "".join(
        f"<unblindedReadNodule><noduleID>{i}</noduleID>{c}{roi('-125.0', SOP.format(1), 'TRUE', RING)}"
        "</unblindedReadNodule>"
        for i, c in enumerate([blank, zeros, "<characteristics/>"])
    )
    message = parse_lidc_xml(write(tmp_path, document(f"<readingSession>{body}</readingSession>")))
    assert [n.ratings for n in message.sessions[0].nodules] == [None, None, None]
    # Outlined but unrated (LIDC's documented omissions): not small, left out, and said so.
    assert not any(n.small for n in message.sessions[0].nodules)
    problems: list[str] = []
    assert to_annotations(message, problems=problems) == []
    assert len(problems) == 3 and all("not rated" in p for p in problems)


def test_to_annotations_keeps_what_the_nodule_table_keeps(tmp_path):
    message = parse_lidc_xml(write(tmp_path, document(SESSIONS)))
    problems: list[str] = []
    annotations = to_annotations(message, scan_id=7, slice_z=SLICE_Z, first_id=11, problems=problems)
    assert problems == []
    first, second = annotations
    assert (first.id, second.id) == (11, 12) and first.scan_id == 7
    assert first.reader_nodule_id == "Nodule 001" and first.ratings == (5, 1, 6, 3, 3, 3, 4, 5, 5)
    assert [(c.z, c.inclusion) for c in first.contours] == [(-125.0, True), (-127.5, True), (-127.5, False)]
    # The second reader's single-point roi is a stray mark: dropped, as pylidc dropped it.
    assert [c.z for c in second.contours] == [-125.0] and second.ratings[-1] == 4
    assert group_annotations(scan(annotations)) == [(first, second)]


def test_outlines_are_put_on_slices_by_z_then_by_sop_uid(tmp_path):
    off = roi("-126.0", SOP.format(2), "TRUE", RING)  # on no slice; its SOP UID names one
    lost = roi("-300.0", "1.2.3", "TRUE", RING)  # on no slice, unknown SOP UID
    near = roi("-124.99", SOP.format(1), "TRUE", RING)
    body = f"<readingSession><unblindedReadNodule><noduleID>1</noduleID>{CHARACTERISTICS}{near}{off}{lost}"
    message = parse_lidc_xml(write(tmp_path, document(body + "</unblindedReadNodule></readingSession>")))
    problems: list[str] = []
    sop_z = {SOP.format(2): -127.5}
    (only,) = to_annotations(message, slice_z=SLICE_Z, sop_z=sop_z, problems=problems)
    assert [c.z for c in only.contours] == [-125.0, -127.5]
    assert len(problems) == 1 and "z = -300 mm lies on no slice" in problems[0]
    # Without the slice positions the z positions are taken as written.
    assert [c.z for c in to_annotations(message)[0].contours] == [-124.99, -126.0, -300.0]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (document(SESSIONS)[:900], "malformed XML"),
        ("not xml at all", "malformed XML"),
        ("<?xml version='1.0'?><html><body/></html>", "root element <html>"),
        (document(SESSIONS, "http://www.nih.gov/idri", "IdriReadMessage"), "chest radiograph read"),
        (document(SESSIONS, "http://example.com/other"), "unknown namespace"),
        (document(SESSIONS).replace(SERIES, ""), "no SeriesInstanceUid"),
        (
            "<LidcReadMessage xmlns='http://www.nih.gov'><readingSession/></LidcReadMessage>",
            "no ResponseHeader",
        ),
        (document(SESSIONS).replace(">FALSE<", ">MAYBE<"), "inclusion must be TRUE or FALSE"),
        (document(SESSIONS).replace("<xCoord>200<", "<xCoord>abc<"), "xCoord is not a number"),
        (document(SESSIONS).replace("<xCoord>200<", "<xCoord>200.5<"), "not a pixel index"),
        (document(SESSIONS).replace("-132.500000", "nan"), "imageZposition is not finite"),
        (document(SESSIONS).replace("<margin>3<", "<margin>three<"), "margin is not an integer"),
        (document(SESSIONS).replace("<locus>", "<place>").replace("</locus>", "</place>"), "no locus"),
    ],
)
def test_refuses_what_is_not_a_lidc_ct_read(tmp_path, text, reason):
    path = write(tmp_path, text)
    with pytest.raises(LidcXmlError) as raised:
        parse_lidc_xml(path)
    assert reason in raised.value.reason and raised.value.path == path
    assert str(path) in str(raised.value)


def test_a_roi_without_points_is_refused(tmp_path):
    empty = roi("-125.0", SOP.format(1), "TRUE", [])
    nodule = f"<unblindedReadNodule><noduleID>1</noduleID>{empty}</unblindedReadNodule>"
    body = f"<readingSession>{nodule}</readingSession>"
    with pytest.raises(LidcXmlError, match="without edgeMap"):
        parse_lidc_xml(write(tmp_path, document(body)))


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(LidcXmlError, match="no such file"):
        parse_lidc_xml(tmp_path / "absent.xml")
    with pytest.raises(LidcXmlError, match="cannot read"):
        parse_lidc_xml(tmp_path)  # a folder
    with pytest.raises(LidcXmlError, match="no such file"):
        read_xml_header(tmp_path / "absent.xml")


def test_read_xml_header_reads_the_header_only(tmp_path):
    full = write(tmp_path, document(SESSIONS))
    assert read_xml_header(full) == ("LidcReadMessage", SERIES, STUDY)
    # The body is never read: a file cut after the header still answers.
    cut = document(SESSIONS)
    cut = write(tmp_path, cut[: cut.index("</ResponseHeader>") + 30], "cut.xml")
    assert read_xml_header(cut) == ("LidcReadMessage", SERIES, STUDY)
    radiograph = write(tmp_path, document("", "http://www.nih.gov/idri", "IdriReadMessage"), "cxr.xml")
    assert read_xml_header(radiograph)[0] == "IdriReadMessage"
    with pytest.raises(LidcXmlError, match="malformed"):
        read_xml_header(write(tmp_path, "<LidcReadMessage><ResponseHeader><Version>", "bad.xml"))


def _factory_scan():
    """Three readers' marks of one nodule (one with a hole) and a fourth reader's mark of another."""
    hole = contour(z_of(3), [(22, 22), (24, 22), (24, 24), (22, 24)], inclusion=False)
    a = cube(20, 20, 6, range(2, 5), z_of, malignancy=4, reader_id="Nodule 001")
    b = cube(21, 20, 6, range(2, 5), z_of, malignancy=5, reader_id="IL057_127364")
    b = replace(b, contours=(*b.contours, hole))
    c = cube(60, 60, 4, range(8, 10), z_of, malignancy=2, reader_id="3")
    d = cube(20, 21, 5, range(3, 5), z_of, malignancy=3, reader_id="12321")
    return scan([a, b, c, d])


def _sop_uids(s):
    return {float(z): SOP.format(k) for k, z in enumerate(s.slice_z)}


def _same(ours, theirs):
    assert len(ours) == len(theirs)
    for x, y in zip(ours, sorted(theirs, key=lambda a: a.id), strict=True):
        assert (x.reader_nodule_id, x.ratings) == (y.reader_nodule_id, y.ratings)
        assert [(c.z, c.inclusion, c.points.tolist()) for c in x.contours] == [
            (c.z, c.inclusion, c.points.tolist()) for c in y.contours
        ]


@pytest.mark.parametrize("namespace", ["http://www.nih.gov", "http://www.nih.gov/idri", None])
def test_write_then_parse_gives_back_the_annotations(tmp_path, namespace):
    source = _factory_scan()
    extras = [
        ExtraMark("small", 1, "small-1", z_of(6), (40, 41)),
        ExtraMark("non-nodule", 0, "nn-1", z_of(7), (5, 6)),
    ]
    path = write_lidc_xml(source, tmp_path / "001.xml", SERIES, STUDY, _sop_uids(source), extras, namespace)
    message = parse_lidc_xml(path)
    assert (message.series_uid, message.study_uid, message.namespace) == (SERIES, STUDY, namespace or "")
    # a and b mark one nodule, so b opens a second session; c joins it; d marks a's nodule: a third.
    assert [len(s.nodules) for s in message.sessions] == [1, 3, 1]
    small = message.sessions[1].nodules[-1]
    assert (
        small.small and small.rois[0].points.tolist() == [[40, 41]] and small.rois[0].sop_uid == SOP.format(6)
    )
    assert message.sessions[0].non_nodules[0].point == (5, 6)
    annotations = to_annotations(message, source.id, source.slice_z)
    _same(annotations, source.annotations)
    assert [a.id for a in annotations] == [1, 2, 3, 4]
    theirs = nodules_of_scan(source)
    ours = nodules_of_scan(replace(source, annotations=tuple(annotations)))
    assert [n.nodule_id for n in ours] == [n.nodule_id for n in theirs]
    for x, y in zip(ours, theirs, strict=True):
        assert x.ratings == y.ratings and np.array_equal(x.mask, y.mask) and x.centroid_mm == y.centroid_mm


def test_reading_sessions_keep_id_order_and_one_mark_per_nodule():
    source = _factory_scan()
    sessions = reading_sessions(source)
    assert [a.id for s in sessions for a in s] == sorted(a.id for a in source.annotations)
    group_of = {a.id: i for i, g in enumerate(group_annotations(source)) for a in g}
    for session in sessions:
        groups = [group_of[a.id] for a in session]
        assert len(groups) == len(set(groups))


def test_writer_refuses_a_slice_without_sop_uid_and_unknown_marks(tmp_path):
    source = _factory_scan()
    with pytest.raises(ValueError, match="no SOP Instance UID"):
        lidc_xml_document(source, SERIES, STUDY, {})
    with pytest.raises(ValueError, match="unknown extra mark kind"):
        lidc_xml_document(
            source, SERIES, STUDY, _sop_uids(source), [ExtraMark("blob", 0, "x", z_of(1), (1, 1))]
        )


def test_a_single_annotation_scan_round_trips(tmp_path):
    source = scan([annotation([contour(z_of(1), square_outline(5, 5, 3))], malignancy=1)])
    text = lidc_xml_document(source, SERIES, STUDY, _sop_uids(source))
    _same(to_annotations(parse_lidc_xml(tmp_path / "x.xml", text)), source.annotations)


def test_real_reads_round_trip_through_the_xml(lidc_scans):
    """A sample of the real database (every scan with an exclusion outline among them): written as
    LIDC XML and read back, the nodules are those of the nodule table, masks and all."""
    with_holes = [s for s in lidc_scans if any(not c.inclusion for a in s.annotations for c in a.contours)]
    sample = with_holes[:8] + lidc_scans[::60]
    for source in sample:
        text = lidc_xml_document(source, source.series_uid, "1.2.3", _sop_uids(source))
        message = parse_lidc_xml("real.xml", text)
        annotations = to_annotations(message, source.id, source.slice_z)
        _same(annotations, source.annotations)
        ours = nodules_of_scan(replace(source, annotations=tuple(annotations)))
        theirs = nodules_of_scan(source)
        assert [n.nodule_id for n in ours] == [n.nodule_id for n in theirs]
        for x, y in zip(ours, theirs, strict=True):
            assert x.ratings == y.ratings and np.array_equal(x.mask, y.mask), x.nodule_id
