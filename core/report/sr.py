"""The report as a DICOM Structured Report: a Comprehensive 3D SR following TID 1500 "Measurement
Report", built with highdicom, one measurement group per nodule, the CT series as evidence.

``build_sr(report, source_datasets)`` returns the SR dataset, ``write_sr(report, source_files, path)``
writes it atomically. ``source_*`` are the CT series the report was read on (all its instances;
instances of other series are ignored, so a whole study folder may be passed).

The content tree (codes as (value, scheme, meaning); 99MTMR is this project's private scheme, declared
in the Coding Scheme Identification Sequence with responsible organisation "MTMR Reader project")::

    CONTAINER (126000, DCM, "Imaging Measurement Report")            template 1500 (DCMR)
    +- HAS CONCEPT MOD  CODE (121049, DCM, "Language of Content Item and Descendants") = English
    +- HAS OBS CONTEXT  CODE (121005, DCM, "Observer Type") = (121006, DCM, "Person")
    |                   PNAME (121008, DCM, "Person Observer Name") = report.reader_name
    |                     (both omitted when reader_name is empty)
    +- HAS OBS CONTEXT  CODE (121005, DCM, "Observer Type") = (121007, DCM, "Device")
    |                   UIDREF (121012, DCM, "Device Observer UID") = 2.25 UID fixed by the model's
    |                     name, version and weights; TEXT (121013) "Device Observer Name" = model name,
    |                     (121014) manufacturer, (121015) model name and version
    +- HAS CONCEPT MOD  CODE (121058, DCM, "Procedure reported") = (169069000, SCT, "CT of chest")
    +- CONTAINS         CONTAINER (111028, DCM, "Image Library")           TID 1600
    |  +- CONTAINS CONTAINER (126200, DCM, "Image Library Group")   per frame of reference and geometry
    |     +- HAS ACQ CONTEXT  modality, frame of reference UID, rows, columns, pixel spacing, slice
    |     |                   thickness, orientation (TID 1602/1604, shared by the group's images)
    |     +- CONTAINS IMAGE (260753009, SCT, "Source") per CT instance (TID 1601)
    +- CONTAINS         CONTAINER (126010, DCM, "Imaging Measurements")   (absent when no nodules)
    |  +- CONTAINS CONTAINER (125007, DCM, "Measurement Group")   template 1410 (DCMR), one per nodule,
    |     |                                                       in the report's order (rank)
    |     +- HAS OBS CONTEXT  TEXT (112039, DCM, "Tracking Identifier") = marker name
    |     +- HAS OBS CONTEXT  UIDREF (112040, DCM, "Tracking Unique Identifier") = NoduleReport.tracking_uid
    |     +- CONTAINS         CODE (276214006, SCT, "Finding category")
    |     |                     = (49755003, SCT, "Morphologically Abnormal Structure")
    |     +- CONTAINS         CODE (121071, DCM, "Finding") = (27925004, SCT, "Nodule")
    |     +- HAS CONCEPT MOD  CODE (363698007, SCT, "Finding Site") = (39607008, SCT, "Lung")
    |     +- CONTAINS  NUM (81827009, SCT, "Diameter") [mm]: the reader's marker diameter
    |     +- CONTAINS  NUM (111047, DCM, "Probability of cancer") [1]              model output
    |     |  +- HAS CONCEPT MOD  (370129005, SCT, "Measurement Method") = (MODEL, 99MTMR)
    |     |  +- HAS CONCEPT MOD  (121401, DCM, "Derivation") = (373098007, SCT, "Mean")
    |     |  +- HAS PROPERTIES NUM (386136009, SCT, "Standard Deviation") [1] = the uncertainty, and
    |     |  |                 TEXT (121405, DCM, "Population Description"): what it spreads over
    |     |  +- HAS CONCEPT MOD  Algorithm Identification (TID 4019): (111001, DCM) name,
    |     |                      (111003, DCM) version, (111002, DCM, "Algorithm Parameters"):
    |     |                      "trained on ...", "intended use: ...", "weights SHA-256 ..."
    |     +- CONTAINS  TEXT (MALIGNANCYINTERVAL, 99MTMR) = "p = 0.34 (0.22-0.47) - ..." the TTA interval
    |     |              (core.model.inference), "indeterminate" when it crosses the decision band
    |     +- CONTAINS  TEXT (OODWARNING, 99MTMR) per out-of-distribution reason (core.model.ood)
    |     +- CONTAINS  NUM (SUBTLETY .. TEXTURE, 99MTMR, "LIDC ... rating (1-n)") [{score}] x 8:
    |     |              the model's attribute scores; method MODEL and Algorithm Identification
    |     +- CONTAINS  NUM (MALIGNANCY and the eight attribute codes, 99MTMR) [{score}]: each rating
    |     |              the reader confirmed, method READER (or LIDC / PHANTOM: see below), no
    |     |              algorithm identification
    |     +- CONTAINS  CODE (LUNGRADS, 99MTMR, "Lung-RADS v2022 category")
    |     |              = (LUNGRADS-1 .. LUNGRADS-4X, 99MTMR, "Lung-RADS 1" .. "Lung-RADS 4X")
    |     |              +- HAS PROPERTIES TEXT (LUNGRADS-RULE | LUNGRADS-FU | LUNGRADS-BASIS |
    |     |                 NODULE-TEXTURE, 99MTMR): the rule that fired, the follow-up, the basis
    |     |                 (model texture guess, marker diameter) and the texture class
    |     +- CONTAINS  CODE (130400, DCM, "Geometric purpose of region") = (111010, DCM, "Center")
    |     +- CONTAINS  SCOORD3D (111030, DCM, "Image Region") POINT = the marker centre, patient LPS mm,
    |                    in the CT's frame of reference (the report's frame_of_reference_uid)
    |  +- (with a follow-up reading, a nodule's group also holds the prior time point, the change and the
    |     VDT as NUMs and its trend as a CODE, and keeps the prior's tracking UID: core.report.sr_follow_up)
    |  +- (a nodule with a segment in the SEG the SR is built with, ``seg``: the group follows template
    |     1411 "Volumetric ROI Measurements" instead, with the same items and tracking identifier/UID
    |     (the segment's), its region IMAGE (121191, DCM, "Referenced Segment") = the SEG instance and
    |     segment number in place of the centre point, and the mask's volume, long and short axis,
    |     mean diameter and solid component as NUMs: see core.report.sr_volumetric)
    +- CONTAINS         CONTAINER (C0034375, UMLS, "Qualitative Evaluations")
       +- CONTAINS  CODE (STUDYLUNGRADS, 99MTMR, "Lung-RADS v2022 category of the study") (when any)
       +- CONTAINS  TEXT (DISCLAIMER, 99MTMR, "Disclaimer") = report.disclaimer
       +- CONTAINS  TEXT (IMAGEWARNING, 99MTMR, "Warning about the images read") per report.warnings

Model output and reader-confirmed values are told apart by their Measurement Method modifier (SCT
370129005): (MODEL, 99MTMR, "Model prediction") on every number the model produced, which also carries
the Algorithm Identification; (READER, 99MTMR, "Reader confirmed") on the reader's own ratings, or
(LIDC, 99MTMR, "LIDC-IDRI readers' rating") / (PHANTOM, 99MTMR, "Phantom ground truth") when the label
came from those sources. Both use the same concept names (the LIDC rating codes), so a reader of the SR
finds, per rating, the model's value and the confirmed one side by side. The diameter is the marker's,
set by the reader, and has no method. A nodule without a model result keeps its group with the
marker, region and diameter (and any confirmed ratings), without model values or Lung-RADS.

Scores are on the original LIDC scales (malignancy, subtlety and the graded scales 1-5, internal
structure 1-4, calcification 1-6); the probability of cancer is 0..1 with UCUM unit "1", the mean over
the nodule's slices and their mirror images, its standard deviation the model's uncertainty.

Patient and study: from the source headers (a whitelist of the Patient and General Study modules),
unless ``report.anonymised``: then from the report alone (empty where it is), with Patient Identity
Removed = YES, and every UID (study, series, instances, frame of reference) passed through
``report.uid_map``; a UID the map lacks is replaced by a random one, consistent within this SR only.
The SR's own series UID is derived from the (new) CT series UID, so repeated exports of one series
share a series; each export is a new instance. Character set: ISO_IR 192 (UTF-8).

The codes are in ``core.report.sr_codes``; the evidence (header copies, identity, UIDs) and the Image
Library in ``core.report.sr_evidence``.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from core.nodule.ratings import ATTRIBUTES
from core.report.content import NoduleReport, StudyReport
from core.report.sr_codes import (
    COSINE,  # noqa: F401 (re-exported: the codes stay importable from here as before the split)
    CT_OF_CHEST,
    DISCLAIMER,
    IMAGE_WARNING,
    LUNG_RADS,
    LUNG_RADS_BASIS,
    LUNG_RADS_FOLLOW_UP,
    LUNG_RADS_RULE,
    LUNG_RADS_VALUES,
    METHOD_BY_SOURCE,
    METHOD_MODEL,
    MODALITIES,  # noqa: F401 (re-exported)
    NODULE_TEXTURE,
    PIXELS,  # noqa: F401 (re-exported)
    PROBABILITY_UNIT,
    QUALITATIVE_EVALUATIONS,
    RATING_CODES,
    SCHEME,  # noqa: F401 (re-exported)
    SCHEME_NAME,  # noqa: F401 (re-exported)
    SCHEME_ORGANISATION,  # noqa: F401 (re-exported)
    SCHEME_VERSION,  # noqa: F401 (re-exported)
    SCORE_UNIT,
    SOURCE,  # noqa: F401 (re-exported)
    STUDY_LUNG_RADS,
    UNCERTAINTY_POPULATION,
    coding_scheme,
)
from core.report.sr_evidence import (
    UidMap,
    derived_uid,
    evidence_headers,
    image_library,
    quiet_person_names,
    read_headers,
)
from core.report.sr_follow_up import prior_evidence, prior_measurements, trend_evaluation
from core.report.sr_notes import model_notes
from core.report.sr_volumetric import mask_measurements, seg_evidence, segment_references
from core.util.atomic import atomic_write_bytes

DEFAULT_SERIES_NUMBER = 900
SERIES_DESCRIPTION = "MTMR Reader nodule report"


def build_sr(
    report: StudyReport,
    source_datasets: Sequence[Dataset],
    series_number: int = DEFAULT_SERIES_NUMBER,
    instance_number: int = 1,
    manufacturer: str = "MTMR Reader",
    *,
    seg: Dataset | None = None,
    uids: UidMap | None = None,
    prior_datasets: Sequence[Dataset] = (),
) -> Dataset:
    """The report as a Comprehensive 3D SR (TID 1500) referencing ``source_datasets``, the instances of
    the report's CT series (headers suffice; other series are skipped). Raises ``ValueError`` when none
    of them belongs to the report's series, or when nodules have no frame of reference to place them in.

    ``seg``: the DICOM SEG of the report's masks (``core.report.seg.build_seg``, built with the same
    ``uids``); each nodule with a segment in it gets a volumetric group (TID 1411) referencing that
    segment, with the mask's measurements, and the SEG joins the evidence.

    ``prior_datasets``: headers of the prior study's instances, with a follow-up reading; they join
    the evidence as the prior study (``core.report.sr_follow_up.prior_evidence``).
    """
    uids = uids if uids is not None else UidMap(report)
    evidence = evidence_headers(report, source_datasets, uids)
    segments = segment_references(seg) if seg is not None else {}
    frame_of_reference = report.study.get("frame_of_reference_uid") or next(
        (ds.FrameOfReferenceUID for ds in evidence if "FrameOfReferenceUID" in ds), ""
    )
    if report.nodules and not frame_of_reference:
        raise ValueError("the CT series has no frame of reference: nodule positions cannot be placed")
    groups = [
        _nodule_group(nodule, report, str(frame_of_reference), segments.get(nodule.tracking_uid))
        for nodule in report.nodules
    ]

    content = hd.sr.MeasurementReport(
        observation_context=_observation_context(report, manufacturer),
        procedure_reported=CT_OF_CHEST,
        imaging_measurements=groups or [_placeholder_group()],
    )
    root = content[0]
    if not groups:  # no Imaging Measurements (row 6): the Qualitative Evaluations (row 12) stand in
        del root.ContentSequence[-1]
    # the Image Library (row 5) goes before the measurements. highdicom's own repeats every descriptor
    # for every image: for a 300-slice CT that tripled the SR's size and its build time
    root.ContentSequence.insert(_after_procedure(root.ContentSequence), image_library(evidence))
    root.ContentSequence.append(_qualitative_evaluations(report))
    if segments:
        evidence.append(seg_evidence(seg))
    evidence += prior_evidence(report, prior_datasets, uids)

    created = _local_time(report.created)
    ct_series = report.study.get("series_uid", "")
    series_uid = derived_uid("mtmr-reader/sr-series", ct_series) if ct_series else hd.UID()
    kwargs = {}
    if created is not None:
        kwargs = {
            "content_date": created.date(),
            "content_time": created.time(),
            "series_date": created.date(),
            "series_time": created.time(),
        }
    with quiet_person_names():  # highdicom would quote a one-part patient name in a warning
        sr = hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=content,
            series_instance_uid=series_uid,
            series_number=series_number,
            sop_instance_uid=hd.UID(),
            instance_number=instance_number,
            manufacturer=manufacturer,
            is_complete=True,
            is_final=False,
            is_verified=False,
            coding_schemes=[coding_scheme()],
            series_description=SERIES_DESCRIPTION,
            manufacturer_model_name=manufacturer,
            software_versions=_software_version(),
            specific_character_set="ISO_IR 192",
            **kwargs,
        )
    if report.anonymised:
        sr.PatientIdentityRemoved = "YES"
        sr.DeidentificationMethod = "MTMR Reader export: names, IDs and dates removed, UIDs replaced"
    return sr


def write_sr(
    report: StudyReport,
    source_files: Iterable[str | Path],
    path: str | Path,
    prior_files: Iterable[str | Path] = (),
    **options,
) -> Path:
    """Build the SR from the CT files' headers and write it atomically to ``path`` (Part 10 file).
    ``options`` go to ``build_sr`` (series_number, instance_number, manufacturer); ``prior_files``: the
    prior study's files with a follow-up reading (their headers become ``prior_datasets``)."""
    datasets = read_headers(source_files)
    prior_files = list(prior_files)
    if prior_files:
        options["prior_datasets"] = read_headers(prior_files)
    sr = build_sr(report, datasets, **options)
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, sr, enforce_file_format=True)
    path = Path(path)
    atomic_write_bytes(path, buffer.getvalue())
    return path


# --- content -------------------------------------------------------------------------------------


def _observation_context(report: StudyReport, manufacturer: str) -> hd.sr.ObservationContext:
    person = None
    if report.reader_name.strip():
        person = hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
                name=_person_name(report.reader_name)
            ),
        )
    model = report.model
    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=derived_uid("mtmr-reader/model", model.name, model.version, model.weights_sha256),
            name=model.name or "model",
            manufacturer_name=manufacturer,
            model_name=f"{model.name} {model.version}".strip() or "model",
        ),
    )
    return hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device)


def _algorithm(report: StudyReport) -> hd.sr.AlgorithmIdentification:
    model = report.model
    parameters = [f"trained on {model.trained_on}"]
    if model.intended_use:
        parameters.append(f"intended use: {model.intended_use}")
    if model.weights_sha256:
        parameters.append(f"weights SHA-256 {model.weights_sha256}")
    return hd.sr.AlgorithmIdentification(
        name=model.name or "model", version=model.version or "unversioned", parameters=parameters
    )


def _nodule_group(
    nodule: NoduleReport,
    report: StudyReport,
    frame_of_reference: str,
    segment: hd.sr.ReferencedSegment | None = None,
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    marker = nodule.marker
    measurements = [
        hd.sr.Measurement(
            name=codes.SCT.Diameter, value=round(marker.diameter_mm, 2), unit=codes.UCUM.Millimeter
        )
    ]
    result = nodule.result
    if result is not None:
        spread = hd.sr.MeasurementStatisticalProperties(
            values=[
                hd.sr.NumContentItem(
                    name=codes.SCT.StandardDeviation,
                    value=round(float(result.uncertainty), 4),
                    unit=PROBABILITY_UNIT,
                    relationship_type=hd.sr.RelationshipTypeValues.HAS_PROPERTIES,
                )
            ],
            description=UNCERTAINTY_POPULATION,
        )
        measurements.append(
            hd.sr.Measurement(
                name=codes.DCM.ProbabilityOfCancer,
                value=round(float(result.malignancy), 4),
                unit=PROBABILITY_UNIT,
                method=METHOD_MODEL,
                derivation=codes.SCT.Mean,
                algorithm_id=_algorithm(report),
                properties=hd.sr.MeasurementProperties(measurement_statistical_properties=spread),
            )
        )
        for name in ATTRIBUTES:
            if name in result.attributes:
                measurements.append(
                    hd.sr.Measurement(
                        name=RATING_CODES[name],
                        value=round(float(result.attributes[name]), 3),
                        unit=SCORE_UNIT,
                        method=METHOD_MODEL,
                        algorithm_id=_algorithm(report),
                    )
                )
    label = nodule.reader
    if label is not None:
        method = METHOD_BY_SOURCE[label.source]
        confirmed = {"malignancy": label.malignancy} | {n: label.attributes.get(n) for n in ATTRIBUTES}
        for name, value in confirmed.items():
            if value is not None:
                measurements.append(
                    hd.sr.Measurement(
                        name=RATING_CODES[name], value=round(float(value), 3), unit=SCORE_UNIT, method=method
                    )
                )
    evaluations = []
    if nodule.lung_rads is not None:
        rads = nodule.lung_rads
        evaluation = hd.sr.QualitativeEvaluation(name=LUNG_RADS, value=LUNG_RADS_VALUES[rads.category])
        evaluation[0].ContentSequence = hd.sr.ContentSequence(
            [
                _text(concept, value, hd.sr.RelationshipTypeValues.HAS_PROPERTIES)
                for concept, value in (
                    (LUNG_RADS_RULE, rads.rule),
                    (LUNG_RADS_FOLLOW_UP, rads.follow_up),
                    (LUNG_RADS_BASIS, rads.basis),
                    (NODULE_TEXTURE, rads.texture),
                )
                if value
            ]
        )
        evaluations.append(evaluation)
    trend = trend_evaluation(nodule)
    if trend is not None:
        evaluations.append(trend)
    measurements += prior_measurements(nodule)
    common = dict(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=nodule.tracking_uid, identifier=marker.name or f"marker {marker.id}"
        ),
        finding_category=codes.SCT.MorphologicallyAbnormalStructure,
        finding_type=codes.SCT.Nodule,
        finding_sites=[hd.sr.FindingSite(anatomic_location=codes.SCT.Lung)],
        qualitative_evaluations=evaluations or None,
    )
    if segment is not None:  # TID 1411: the region is the SEG's segment
        method = nodule.mask.method if nodule.mask is not None else ""
        measurements += mask_measurements(nodule, method)
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=segment, measurements=measurements, **common
        )
        group[0].ContentSequence.extend(model_notes(result))
        return group
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        referenced_region=hd.sr.ImageRegion3D(
            graphic_type=hd.sr.GraphicTypeValues3D.POINT,
            graphic_data=np.array([[round(float(v), 3) for v in marker.centre_mm]]),
            frame_of_reference_uid=frame_of_reference,
        ),
        geometric_purpose=codes.DCM.Center,
        measurements=measurements,
        **common,
    )
    group[0].ContentSequence.extend(model_notes(result))
    return group


def _placeholder_group() -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """highdicom insists on one group; a report without nodules removes it again."""
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="none")
    )


def _qualitative_evaluations(report: StudyReport) -> hd.sr.ContainerContentItem:
    container = hd.sr.ContainerContentItem(
        name=QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    items = []
    if report.study_lung_rads is not None:
        items.append(
            hd.sr.CodeContentItem(
                name=STUDY_LUNG_RADS,
                value=LUNG_RADS_VALUES[report.study_lung_rads.category],
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        )
    items.append(_text(DISCLAIMER, report.disclaimer or "Research use only.", "CONTAINS"))
    items += [_text(IMAGE_WARNING, warning, "CONTAINS") for warning in report.warnings]
    container.ContentSequence = hd.sr.ContentSequence(items)
    return container


def _after_procedure(items: Sequence[Dataset]) -> int:
    procedure = codes.DCM.ProcedureReported.value
    return 1 + max(
        i for i, item in enumerate(items) if item.ConceptNameCodeSequence[0].CodeValue == procedure
    )


def _text(concept, value: str, relationship) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=concept, value=str(value), relationship_type=relationship)


def _person_name(text: str) -> str:
    """Free text (as typed in the settings) as a DICOM PN: given ``Family^Given`` stays as is, other
    text becomes the family-name component; PN delimiters other than ``^`` become spaces."""
    name = re.sub(r"[\\=\x00-\x1f]", " ", text).strip()
    if "^" not in name:
        name = f"{name}^"
    parts = [part.strip() for part in name.split("^")[:5]]
    # 64 characters for the whole component group, carets included (PS3.5 6.2), not per component:
    # a longer name made pydicom warn and the SR non-conformant
    room, kept = 64 - (len(parts) - 1), []
    for part in parts:
        kept.append(part[: max(room, 0)])
        room -= len(kept[-1])
    return "^".join(kept)


def _local_time(created: str) -> dt.datetime | None:
    """``report.created`` (ISO 8601, UTC) in local time, as highdicom writes its other times."""
    try:
        moment = dt.datetime.fromisoformat(created)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone().replace(tzinfo=None)


def _software_version() -> list[str]:
    """SoftwareVersions (LO, VM 1-n): a list, the multi-value form pydicom takes without a warning."""
    try:
        from importlib.metadata import version

        return [f"mtmr-reader {version('mtmr-reader')}", f"highdicom {hd.__version__}"]
    except Exception:  # not installed as a package: the version is unknown, not an error
        return [f"highdicom {hd.__version__}"]
