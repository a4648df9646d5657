"""The SR's volumetric measurement groups (TID 1411) for nodules segmented in a DICOM SEG
(``core.report.seg``): the reference to each nodule's segment, the SEG as evidence, and the numbers
measured on the mask as NUM items.

The mask's measurements (``NoduleMeasurement``) carry the measurement method (MASK, 99MTMR, "Measured
on the nodule's 3D mask") and the segmenter (``NoduleMask.method``) as Algorithm Identification::

    NUM (118565006, SCT, "Volume")      [mm3]  volume_mm3
    NUM (103339001, SCT, "Long axis")   [mm]   long_axis_mm
    NUM (103340004, SCT, "Short axis")  [mm]   short_axis_mm
    NUM (81827009, SCT, "Diameter")     [mm]   mean_diameter_mm, Derivation (121401, DCM) = Mean
    NUM (SOLIDDIAMETER, 99MTMR, "Mean diameter of the solid component") [mm], Derivation Mean:
        solid_diameter_mm, part-solid nodules only

(the codes dcmqi and highdicom use for volumetric measurements; UCUM units). Neither DCM nor SNOMED CT
has a concept for a part-solid nodule's solid component, so its diameter has this project's code
(national lung screening guides define local codes for it too). The marker's own
diameter stays as in the planar group: SCT Diameter without a method.
"""

from __future__ import annotations

import highdicom as hd
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from core.report.content import NoduleReport
from core.report.sr_codes import (
    CUBIC_MILLIMETER,
    LONG_AXIS,
    METHOD_MASK,
    SHORT_AXIS,
    SOLID_DIAMETER,
    VOLUME,
)


def segment_references(seg: Dataset) -> dict[str, hd.sr.ReferencedSegment]:
    """Tracking UID -> the reference to its segment in ``seg``, with the CT images its frames lie on
    (the SEG's series when its frames name none). Built here, not by highdicom's
    ``ReferencedSegment.from_segmentation``: that reads the segment number per frame, which highdicom
    itself writes once, shared, when the SEG has one segment."""
    shared = seg.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in seg else Dataset()
    images: dict[int, dict[str, str]] = {}  # segment number -> SOP instance UID -> SOP class UID
    for frame in seg.get("PerFrameFunctionalGroupsSequence", []):
        identification = frame.get("SegmentIdentificationSequence") or shared.get(
            "SegmentIdentificationSequence"
        )
        if not identification:
            continue
        found = images.setdefault(int(identification[0].ReferencedSegmentNumber), {})
        for derivation in frame.get("DerivationImageSequence", []):
            for source in derivation.get("SourceImageSequence", []):
                found[source.ReferencedSOPInstanceUID] = source.ReferencedSOPClassUID
    series = hd.sr.SourceSeriesForSegmentation(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    references = {}
    for item in seg.SegmentSequence:
        if "TrackingUID" not in item:
            continue
        found = images.get(int(item.SegmentNumber))
        sources = [hd.sr.SourceImageForSegmentation(cls, uid) for uid, cls in (found or {}).items()]
        references[str(item.TrackingUID)] = hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=int(item.SegmentNumber),
            source_images=sources or None,
            source_series=None if sources else series,
        )
    return references


def seg_evidence(seg: Dataset) -> Dataset:
    """The SEG's identity, for the SR's evidence (the SR references its segments)."""
    ds = Dataset()
    for keyword in ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "Modality",
                    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "StudyID", "AccessionNumber"):  # fmt: skip
        if keyword in seg:
            setattr(ds, keyword, seg[keyword].value)
    return ds


def mask_measurements(nodule: NoduleReport, segment_method: str) -> list[hd.sr.Measurement]:
    """Volume, long and short axis, their mean (Lung-RADS' size) and the solid component's mean
    diameter (part-solid nodules), measured on the mask, with the segmenter as the algorithm."""
    measurement = nodule.measurement
    if measurement is None:
        return []
    algorithm = hd.sr.AlgorithmIdentification(name=segment_method[:64] or "unknown", version=version())
    mm = codes.UCUM.Millimeter
    values = [
        (VOLUME, measurement.volume_mm3, CUBIC_MILLIMETER, None),
        (LONG_AXIS, measurement.long_axis_mm, mm, None),
        (SHORT_AXIS, measurement.short_axis_mm, mm, None),
        (codes.SCT.Diameter, measurement.mean_diameter_mm, mm, codes.SCT.Mean),
    ]
    if measurement.texture == "part-solid" and measurement.solid_diameter_mm is not None:
        values.append((SOLID_DIAMETER, measurement.solid_diameter_mm, mm, codes.SCT.Mean))
    return [
        hd.sr.Measurement(
            name=name,
            value=round(float(value), 2),
            unit=unit,
            method=METHOD_MASK,
            derivation=derivation,
            algorithm_id=algorithm,
        )
        for name, value, unit, derivation in values
    ]


def version() -> str:
    """This project's version ("unversioned" when it is not installed as a package)."""
    try:
        from importlib.metadata import version

        return version("mtmr-reader")
    except Exception:  # not installed as a package: the version is unknown, not an error
        return "unversioned"
