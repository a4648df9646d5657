"""Write LIDC's ``LidcReadMessage`` XML (the schema ``core.lidc.xml`` reads) from a Scan's annotations:
what the miniature LIDC-IDRI download of the tests is made of, and a round-trip check of the reader."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import generate_uid

from core.lidc.annotations import Annotation, Scan
from core.lidc.xml import CHARACTERISTICS, NAMESPACE, SCHEMA_LOCATION, XSI


def reading_sessions(scan: Scan) -> list[list[Annotation]]:
    """The scan's annotations split into readers' sessions, keeping their id order.

    The database does not say which reader made which mark; its ids follow the XML, session after
    session. Walking them in id order, a new session starts when the nodule (``group_annotations``)
    already has a mark in the current one: the fewest sessions that keep both the order and the rule
    that a reader marks a nodule once.
    """
    from core.lidc.grouping import group_annotations

    group_of = {a.id: number for number, group in enumerate(group_annotations(scan)) for a in group}
    sessions: list[list[Annotation]] = [[]]
    seen: set[int] = set()
    for annotation in sorted(scan.annotations, key=lambda a: a.id):
        group = group_of[annotation.id]
        if group in seen:
            sessions.append([])
            seen = set()
        sessions[-1].append(annotation)
        seen.add(group)
    return [s for s in sessions if s]


def _add(parent: ElementTree.Element, tag: str, text: str | None = None) -> ElementTree.Element:
    element = ElementTree.SubElement(parent, tag)
    if text is not None:
        element.text = text
    return element


def _add_roi(parent, z: float, sop_uid: str, inclusion: bool, points: Iterable[tuple[int, int]]) -> None:
    roi = _add(parent, "roi")
    _add(roi, "imageZposition", f"{z:.6f}")
    _add(roi, "imageSOP_UID", sop_uid)
    _add(roi, "inclusion", "TRUE" if inclusion else "FALSE")
    for x, y in points:
        edge = _add(roi, "edgeMap")
        _add(edge, "xCoord", str(int(x)))
        _add(edge, "yCoord", str(int(y)))


@dataclass(frozen=True)
class ExtraMark:
    """A mark the annotation table does not hold, written into one reader's session.

    ``kind`` is "small" (a nodule < 3 mm: no characteristics, one point) or "non-nodule".
    """

    kind: str
    session: int  # 0-based index of the reading session
    mark_id: str
    z: float
    point: tuple[int, int]  # (x, y) = (column, row)


def lidc_xml_document(
    scan: Scan,
    series_uid: str,
    study_uid: str,
    sop_uids_by_z: Mapping[float, str],
    extras: Sequence[ExtraMark] = (),
    namespace: str | None = NAMESPACE,
    uid: str = "",
) -> str:
    """The text of :func:`write_lidc_xml`."""
    sop_by_z = {round(float(z), 3): uid for z, uid in sop_uids_by_z.items()}

    def sop(z: float) -> str:
        try:
            return sop_by_z[round(float(z), 3)]
        except KeyError:
            raise ValueError(f"no SOP Instance UID for the slice at z = {z:g} mm") from None

    attributes = {"uid": uid or generate_uid(entropy_srcs=[series_uid, "LidcReadMessage"])}
    if namespace:
        attributes |= {"xmlns": namespace, "xmlns:xsi": XSI, "xsi:schemaLocation": SCHEMA_LOCATION}
    root = ElementTree.Element("LidcReadMessage", attributes)
    header = _add(root, "ResponseHeader")
    for tag, text in (
        ("Version", "1.8.1"),
        ("MessageId", str(scan.id)),
        ("DateRequest", "2007-11-01"),
        ("TimeRequest", "12:30:38"),
        ("RequestingSite", "removed"),
        ("ServicingSite", "removed"),
        ("TaskDescription", "Second unblinded read"),
        ("CtImageFile", "removed"),
        ("SeriesInstanceUid", series_uid),
        ("DateService", "2004-09-23"),
        ("TimeService", "00:00:00"),
        ("ResponseDescription", "1 - Reading complete"),
        ("StudyInstanceUID", study_uid),
    ):
        _add(header, tag, text)
    sessions = reading_sessions(scan)
    wanted = max((mark.session for mark in extras), default=-1) + 1
    sessions += [[] for _ in range(wanted - len(sessions))]
    for number, marks in enumerate(sessions):
        session = _add(root, "readingSession")
        _add(session, "annotationVersion", "3.12")
        _add(session, "servicingRadiologistID", f"reader-{number + 1}")
        for annotation in marks:
            nodule = _add(session, "unblindedReadNodule")
            _add(nodule, "noduleID", annotation.reader_nodule_id)
            characteristics = _add(nodule, "characteristics")
            for tag, value in zip(CHARACTERISTICS, annotation.ratings, strict=True):
                _add(characteristics, tag, str(int(value)))
            for contour in annotation.contours:
                _add_roi(nodule, contour.z, sop(contour.z), contour.inclusion, contour.points.tolist())
        for mark in (m for m in extras if m.session == number and m.kind == "small"):
            nodule = _add(session, "unblindedReadNodule")
            _add(nodule, "noduleID", mark.mark_id)
            _add_roi(nodule, mark.z, sop(mark.z), True, [mark.point])
        for mark in (m for m in extras if m.session == number and m.kind == "non-nodule"):
            non_nodule = _add(session, "nonNodule")
            _add(non_nodule, "nonNoduleID", mark.mark_id)
            _add(non_nodule, "imageZposition", f"{mark.z:.6f}")
            _add(non_nodule, "imageSOP_UID", sop(mark.z))
            locus = _add(non_nodule, "locus")
            _add(locus, "xCoord", str(int(mark.point[0])))
            _add(locus, "yCoord", str(int(mark.point[1])))
    unknown = [m.kind for m in extras if m.kind not in ("small", "non-nodule")]
    if unknown:
        raise ValueError(f"unknown extra mark kind {unknown[0]!r}: small or non-nodule")
    ElementTree.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(root, encoding="unicode") + "\n"


def write_lidc_xml(
    scan: Scan,
    path: str | Path,
    series_uid: str,
    study_uid: str,
    sop_uids_by_z: Mapping[float, str],
    extras: Sequence[ExtraMark] = (),
    namespace: str | None = NAMESPACE,
    uid: str = "",
) -> Path:
    """Write the scan's annotations as a LIDC ``LidcReadMessage`` file (UTF-8); returns the path.

    The annotations are split into reading sessions by :func:`reading_sessions`; each becomes an
    ``unblindedReadNodule`` with its nine characteristics and one ``roi`` per contour, in order.

    Args:
        scan: the annotations (contour points as pixel (column, row) of the series written).
        series_uid, study_uid: the header's SeriesInstanceUid and StudyInstanceUID.
        sop_uids_by_z: slice z (mm) -> SOP Instance UID of the series' slices (matched to 1 µm).
        extras: small nodules and non-nodules to add (the annotation table has none).
        namespace: the default namespace (LIDC's own; another variant, or None for none).
        uid: the root's uid attribute (default: derived from the series UID).

    Raises:
        ValueError: a contour's z has no SOP UID in ``sop_uids_by_z``; an unknown extra mark kind.
    """
    path = Path(path)
    text = lidc_xml_document(scan, series_uid, study_uid, sop_uids_by_z, extras, namespace, uid)
    path.write_text(text, encoding="utf-8")
    return path
