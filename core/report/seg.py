"""The nodules' 3D masks as a DICOM Segmentation (SEG), built with highdicom.

``build_seg(report, volume, source_datasets)`` returns the SEG dataset, ``write_seg(...)`` writes it
atomically. One BINARY segment per nodule of the report that has a non-empty mask
(``NoduleReport.mask``), numbered 1.. in the report's order (rank):

* label: the marker's name as an LO value (64 characters, no backslash); Tracking ID: the whole
  name, as the SR's tracking identifier has it; Tracking UID: ``NoduleReport.tracking_uid``, the one the
  SR's measurement group carries (``core.report.content.tracking_uid``), so the two can be joined;
* property category (49755003, SCT, "Morphologically Abnormal Structure"), type (27925004, SCT,
  "Nodule"), anatomic region (39607008, SCT, "Lung"), as the SR's finding category, type and site;
* algorithm type AUTOMATIC (the segmenter named by ``NoduleMask.method``), SEMIAUTOMATIC when the
  reader edited the mask (``NoduleMask.edited``), MANUAL for drawn masks (``"truth"``: the LIDC
  readers' consensus outline, ``"manual..."``); AUTOMATIC and SEMIAUTOMATIC carry the algorithm's
  name, family (CID 7162) and version.

Geometry: the masks are boxes in the CT volume's own voxel grid, so the frames are planes of that
grid (the volume's affine gives their orientation, spacing and positions; where the volume has one
slice per CT image, each plane sits exactly on its image, also where the loader spaced an uneven
series evenly). Only the planes that hold a mask are written, each at full CT size (rows x columns),
so viewers overlay it on the CT slice; highdicom links each frame to the CT image at that position
(Derivation Image Sequence) and omits a segment's empty frames. The SEG belongs to the CT's study and
to the frame of reference the SR names (the first slice's, should the slices name several).

Patient and study come from the CT headers, or from the report alone when it is anonymised, and
every UID passes through the same ``UidMap`` as the SR (``core.report.sr_evidence``): pass one map
to both ``build_seg`` and ``core.report.sr.build_sr`` so the SR's segment references find the SEG's
source images.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from core.measure.mask import NoduleMask
from core.report.content import NoduleReport, StudyReport, build_report
from core.report.sr_evidence import (
    UidMap,
    derived_uid,
    evidence_headers,
    quiet_person_names,
    read_headers,
)
from core.report.sr_volumetric import version
from core.util.atomic import atomic_write_bytes

if TYPE_CHECKING:
    from core.volume import CTVolume

DEFAULT_SERIES_NUMBER = 901
SERIES_DESCRIPTION = "MTMR Reader nodule segmentation"
# what highdicom needs of a CT header to place its frames (never identity: that comes from evidence)
_GEOMETRY = ("ImagePositionPatient", "NumberOfFrames", "SharedFunctionalGroupsSequence",
             "PerFrameFunctionalGroupsSequence")  # fmt: skip


def segmented(report: StudyReport, shape_zyx: tuple[int, int, int]) -> list[tuple[NoduleReport, NoduleMask]]:
    """The report's nodules that have a mask with voxels inside a volume of ``shape_zyx``, in the
    report's order, each with its mask clipped to the volume: the SEG's segments 1, 2, ..."""
    out = []
    for nodule in report.nodules:
        if nodule.mask is None:
            continue
        mask = nodule.mask.clipped(tuple(shape_zyx))
        if mask.voxels:
            out.append((nodule, mask))
    return out


def build_seg(
    report: StudyReport,
    volume: CTVolume,
    source_datasets: Sequence[Dataset],
    *,
    uids: UidMap | None = None,
    series_number: int = DEFAULT_SERIES_NUMBER,
    instance_number: int = 1,
    manufacturer: str = "MTMR Reader",
) -> hd.seg.Segmentation:
    """The SEG of the report's masks on ``volume`` (the CT they were drawn on), referencing
    ``source_datasets`` (the CT series' instances; headers suffice). ValueError when no nodule has a
    mask inside the volume, or no source instance belongs to the report's series."""
    nodules = segmented(report, volume.array.shape)
    if not nodules:
        raise ValueError("no nodule has a 3D mask: there is nothing to write as a DICOM SEG")
    uids = uids if uids is not None else UidMap(report)
    sources = _source_headers(report, source_datasets, uids)
    frame_of_reference = report.study.get("frame_of_reference_uid") or next(
        (ds.FrameOfReferenceUID for ds in sources if "FrameOfReferenceUID" in ds), ""
    )  # as the SR has it
    if not frame_of_reference:
        raise ValueError("the CT series has no frame of reference: the masks cannot be placed")
    for ds in sources:  # one series, one frame of reference (PS3.3 C.7.4.1): the volume was read as one
        ds.FrameOfReferenceUID = frame_of_reference
    planes, pixels = _frames(volume, [mask for _, mask in nodules])
    orientation, measures, positions = _geometry(volume, planes, sources)
    ct_series = report.study.get("series_uid", "")
    with quiet_person_names():  # highdicom would quote a one-part patient name in a warning
        seg = hd.seg.Segmentation(
            source_images=sources,
            pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=[
                _description(number, nodule, mask) for number, (nodule, mask) in enumerate(nodules, start=1)
            ],
            series_instance_uid=derived_uid("mtmr-reader/seg-series", ct_series) if ct_series else hd.UID(),
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=instance_number,
            manufacturer=manufacturer,
            manufacturer_model_name=manufacturer,
            software_versions=_software_versions(),
            device_serial_number="0",
            content_label="NODULES",
            content_description="Lung nodule masks",
            series_description=SERIES_DESCRIPTION,
            plane_orientation=orientation,
            pixel_measures=measures,
            plane_positions=positions,
            omit_empty_frames=True,
        )
    if report.anonymised:
        seg.PatientIdentityRemoved = "YES"
        seg.DeidentificationMethod = "MTMR Reader export: names, IDs and dates removed, UIDs replaced"
    return seg


def write_seg(
    report: StudyReport | Mapping[str, NoduleMask],
    volume: CTVolume,
    source_files: Iterable[str | Path],
    path: str | Path,
    *,
    names: Mapping[str, str] | None = None,
    **options,
) -> Path:
    """Write the DICOM SEG of the masks atomically to ``path`` (Part 10 file) and return ``path``.

    ``report``: a ``StudyReport`` (its nodules' ``mask``), or the masks directly, keyed by marker id
    (for ``measure --seg``): then each segment is labelled ``names[id]`` (default: the id) and its
    tracking UID is the one an SR of the same series gives that marker. ``volume`` is the CT the masks
    were made on, ``source_files`` its series' DICOM files. ``options`` go to ``build_seg``
    (series_number, instance_number, manufacturer, uids). ValueError as ``build_seg``; the file is
    then not written and an existing one is left as it was."""
    if not isinstance(report, StudyReport):
        report = mask_report(volume, report, names or {})
    datasets = read_headers(source_files)
    seg = build_seg(report, volume, datasets, **options)
    buffer = io.BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def mask_report(volume: CTVolume, masks: Mapping[str, NoduleMask], names: Mapping[str, str]) -> StudyReport:
    """A report that holds only ``masks`` (marker id -> mask) on ``volume``, for ``write_seg``."""
    from core.nodule.markers import NoduleMarker

    markers = [
        NoduleMarker(
            id=marker_id,
            name=str(names.get(marker_id) or marker_id),
            centre_mm=mask.centre_mm,
            diameter_mm=mask.diameter_mm if mask.diameter_mm > 0 else 1.0,
        )
        for marker_id, mask in masks.items()
    ]
    return build_report(volume, markers, {}, {}, {}, masks=masks)


# --- frames and geometry --------------------------------------------------------------------------


def _frames(volume: CTVolume, masks: Sequence[NoduleMask]) -> tuple[list[int], np.ndarray]:
    """The volume's slice indices that hold any mask, and the masks on those planes: a label map
    (planes, rows, columns) with segment numbers, or, where masks overlap, one binary plane stack
    per segment (planes, rows, columns, segments)."""
    planes = sorted({z for mask in masks for z in _slices(mask)})
    index = {z: i for i, z in enumerate(planes)}
    rows, columns = volume.array.shape[1:]
    labels = np.zeros((len(planes), rows, columns), dtype=np.uint8 if len(masks) < 256 else np.uint16)
    for number, mask in enumerate(masks, start=1):
        z0, y0, x0 = mask.origin_zyx
        for k in _slices(mask):
            view = labels[index[k], y0 : y0 + mask.mask.shape[1], x0 : x0 + mask.mask.shape[2]]
            plane = mask.mask[k - z0]
            if np.any(view[plane]):
                return planes, _stacked(planes, index, (rows, columns), masks)
            view[plane] = number
    return planes, labels


def _stacked(planes, index, shape, masks) -> np.ndarray:
    stack = np.zeros((len(planes), *shape, len(masks)), dtype=bool)
    for number, mask in enumerate(masks):
        z0, y0, x0 = mask.origin_zyx
        for k in _slices(mask):
            ys, xs = slice(y0, y0 + mask.mask.shape[1]), slice(x0, x0 + mask.mask.shape[2])
            stack[index[k], ys, xs, number] = mask.mask[k - z0]
    return stack


def _slices(mask: NoduleMask) -> list[int]:
    """The volume slice indices where ``mask`` (clipped to the volume) has voxels."""
    filled = np.flatnonzero(mask.mask.any(axis=(1, 2)))
    return [int(mask.origin_zyx[0] + k) for k in filled]


def _geometry(volume: CTVolume, planes: Sequence[int], sources: Sequence[Dataset]):
    """Plane orientation, pixel measures and one plane position per slice index, from the affine
    (voxel (x, y, z) -> LPS mm): DICOM's row direction is the volume's x axis, its column direction y.
    Where the volume has one slice per CT image (not resampled), each plane is moved along the normal
    onto its image: the affine's even spacing only approximates a series with a gap or uneven steps,
    and the mask lies on the image's pixels."""
    affine = np.asarray(volume.affine, dtype=float)
    sx, sy, sz = (float(np.linalg.norm(affine[:3, i])) for i in range(3))
    row, column = affine[:3, 0] / sx, affine[:3, 1] / sy
    patient = hd.CoordinateSystemNames.PATIENT
    orientation = hd.PlaneOrientationSequence(patient, [round(float(v), 8) for v in (*row, *column)])
    thickness = sources[0].get("SliceThickness") or volume.metadata.slice_thickness or sz
    measures = hd.PixelMeasuresSequence(
        pixel_spacing=[round(sy, 6), round(sx, 6)], slice_thickness=round(float(thickness), 6)
    )
    points = np.array([(affine @ [0.0, 0.0, z, 1.0])[:3] for z in planes])
    images = _image_positions(sources)
    normal = np.cross(row, column)
    if len(images) == volume.array.shape[0]:
        depth = images @ (affine[:3, 2] / sz)
        ordered = images[np.argsort(depth)]  # the images in the volume's slice order
        offsets = (ordered[list(planes)] - points) @ normal
        if np.all(np.diff(np.sort(depth)) > 0):
            points = points + offsets[:, None] * normal
    positions = [hd.PlanePositionSequence(patient, [round(float(v), 6) for v in point]) for point in points]
    return orientation, measures, positions


def _image_positions(sources: Sequence[Dataset]) -> np.ndarray:
    """(n, 3) Image Position (Patient) of every CT image (frame), or (0, 3) when some have none."""
    positions = []
    for ds in sources:
        frames = ds.get("PerFrameFunctionalGroupsSequence") or [ds]
        for frame in frames:
            plane = frame.get("PlanePositionSequence")
            position = plane[0].get("ImagePositionPatient") if plane else frame.get("ImagePositionPatient")
            if position is None or len(position) != 3:
                return np.zeros((0, 3))
            positions.append([float(v) for v in position])
    return np.array(positions, dtype=float).reshape(-1, 3)


# --- segments and sources -------------------------------------------------------------------------


def _lo(text: str) -> str:
    """``text`` as a DICOM LO value: 64 characters, no backslash (LO's value separator) or control
    characters."""
    return re.sub(r"[\\\x00-\x1f]", " ", text).strip()[:64]


def _description(number: int, nodule: NoduleReport, mask: NoduleMask) -> hd.seg.SegmentDescription:
    name = nodule.marker.name or f"marker {nodule.marker.id}"  # the SR's tracking identifier
    method = mask.method or "unknown"
    if mask.edited:
        kind, family = hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC, codes.cid7162.ManualProcessing
    elif method == "truth" or method.startswith("manual"):
        kind, family = hd.seg.SegmentAlgorithmTypeValues.MANUAL, None
    elif method.startswith("learned"):
        kind, family = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, codes.cid7162.ArtificialIntelligence
    else:
        kind, family = hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, codes.cid7162.MorphologicalOperations
    algorithm = None
    if family is not None:
        label = f"{method} (reader-edited)" if mask.edited else method
        algorithm = hd.AlgorithmIdentificationSequence(name=_lo(label), family=family, version=version())
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=_lo(name),
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule,
        algorithm_type=kind,
        algorithm_identification=algorithm,
        tracking_uid=nodule.tracking_uid,
        tracking_id=name,
        anatomic_regions=[codes.SCT.Lung],
    )


def _source_headers(report: StudyReport, datasets: Sequence[Dataset], uids: UidMap) -> list[Dataset]:
    """The SR's evidence copies of the series' instances (identity and UIDs as the SR has them) with
    the geometry highdicom needs to place the SEG's frames on them."""
    originals = {uids(ds.SOPInstanceUID): ds for ds in datasets if "SOPInstanceUID" in ds}
    sources = evidence_headers(report, datasets, uids)
    for ds in sources:
        original = originals[ds.SOPInstanceUID]
        for keyword in _GEOMETRY:
            if keyword in original:
                setattr(ds, keyword, copy.deepcopy(original[keyword].value))
    return sources


def _software_versions() -> list[str]:
    return [f"mtmr-reader {version()}", f"highdicom {hd.__version__}"]
