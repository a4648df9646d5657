"""What a report says, once, for every format (DICOM SR, PDF, CSV, JSON): the study, the model, the
reader, and the nodules ranked by malignancy with their scores, Lung-RADS and reader-confirmed values.

Built from what the app and the CLI already hold: the volume (its metadata), the markers, the model's
results, the reader's labels and the model's card. ``anonymised`` returns a copy without names, IDs
or dates, with every UID replaced by one derived from it and a secret salt, so the same study maps to
the same new UIDs within one export and references between objects stay intact.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from core.followup.compare import FollowUp, PairedNodule
from core.measure.mask import NoduleMask
from core.measure.measurement import NoduleMeasurement
from core.nodule.labels import NoduleLabel
from core.nodule.lungrads import LungRads, nodule_category, study_category
from core.nodule.markers import NoduleMarker
from core.nodule.prediction import NoduleResult
from core.nodule.tracking import tracking_uid
from core.volume import CTVolume

DISCLAIMER = (
    "Research use only; not for clinical decisions. Scores come from a machine-learning model, "
    "Lung-RADS categories from measured sizes (else the texture guess and the marker diameter)."
)


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    version: str
    trained_on: str
    intended_use: str
    weights_sha256: str

    @classmethod
    def from_card(cls, card: Mapping) -> ModelIdentity:
        return cls(
            name=str(card.get("name", "model")),
            version=str(card.get("version", "")),
            trained_on=str(card.get("trained_on", "unknown data")),
            intended_use=str(card.get("intended_use", "")),
            weights_sha256=str(card.get("weights_sha256", "")),
        )

    @property
    def text(self) -> str:
        use = f" ({self.intended_use})" if self.intended_use else ""
        return f"{self.name} {self.version}{use}, trained on {self.trained_on}".replace("  ", " ")


@dataclass(frozen=True)
class NoduleReport:
    rank: int  # 1 = most suspicious; 0 when not analysed
    marker: NoduleMarker
    slice_number: int  # 1-based axial slice, as the viewer shows it
    location: str  # e.g. "right upper zone, slice 87" ("" when unknown)
    result: NoduleResult | None  # the model's output (None: not analysed)
    reader: NoduleLabel | None  # reader-confirmed values (None: not confirmed)
    lung_rads: LungRads | None
    tracking_uid: str  # stable per marker and series: the SR's Tracking Unique Identifier
    measurement: NoduleMeasurement | None = None  # from the nodule's 3D mask (None: not segmented)
    # the mask itself (the SEG's segment; None: not segmented); reports compare by their numbers
    mask: NoduleMask | None = field(default=None, compare=False)
    measurement_error: str = ""  # why the nodule could not be measured ("" when measured or not tried)
    prior: PairedNodule | None = None  # with a follow-up reading: this nodule's pair with a prior one
    follow_up_status: str = ""  # with a follow-up reading: "new" or the pair's trend; "" without one

    @property
    def attributes(self) -> dict[str, float]:
        """The model's attribute scores (original LIDC scales)."""
        return dict(self.result.attributes) if self.result else {}


@dataclass(frozen=True)
class StudyReport:
    patient: dict  # name, id, birth_date, sex ("" when unknown or anonymised)
    study: dict  # study_uid, series_uid, frame_of_reference_uid, study_date, study_description,
    #              series_description, series_number, modality, manufacturer
    model: ModelIdentity
    reader_name: str
    nodules: tuple[NoduleReport, ...]  # ranked, most suspicious first; unanalysed last
    study_lung_rads: LungRads | None
    created: str  # ISO 8601 UTC
    anonymised: bool = False
    disclaimer: str = DISCLAIMER
    # what the loader had to assume or correct (a made-up voxel size, a gap, a tilt): every format shows it
    warnings: tuple[str, ...] = ()
    uid_map: dict = field(default_factory=dict, compare=False)  # old -> new UIDs when anonymised


def build_report(
    volume: CTVolume,
    markers: Sequence[NoduleMarker],
    results: Mapping[str, NoduleResult],
    labels: Mapping[str, NoduleLabel],
    model_card: Mapping,
    reader_name: str = "",
    locations: Mapping[str, str] | None = None,
    now: dt.datetime | None = None,
    masks: Mapping[str, NoduleMask] | None = None,
    measurements: Mapping[str, NoduleMeasurement] | None = None,
    follow_up: FollowUp | None = None,
) -> StudyReport:
    """The report of one study; ``results``, ``labels``, ``masks`` and ``measurements`` are keyed by
    marker id. With ``follow_up`` (``core.followup.compare``, this study the current one) a paired
    nodule carries its pair (``prior``), the prior's tracking UID and its Lung-RADS with priors; an
    unpaired one in the follow-up is "new", with its Lung-RADS as a new nodule."""
    meta = volume.metadata
    pairs = {p.current_id: p for p in follow_up.pairs} if follow_up else {}
    new = {n.current_id: n for n in follow_up.new} if follow_up else {}
    nodules = []
    for marker in markers:
        result, label = results.get(marker.id), labels.get(marker.id)
        measurement = (measurements or {}).get(marker.id)
        rads = nodule_category(
            marker.diameter_mm,
            result.attributes if result else None,
            label.attributes if label else None,
            measured=measurement,
        )
        pair, status = pairs.get(marker.id), "new" if marker.id in new else ""
        if pair is not None:
            status = pair.growth.trend if pair.growth else "paired"
            rads = pair.lung_rads or rads
        elif status:
            rads = new[marker.id].lung_rads or rads
        z = volume.mm_to_voxel(marker.centre_mm)[2]
        nodules.append(
            NoduleReport(
                rank=result.rank if result else 0,
                marker=marker,
                slice_number=round(float(z)) + 1,
                location=(locations or {}).get(marker.id, ""),
                result=result,
                reader=label,
                lung_rads=rads,
                tracking_uid=pair.tracking_uid if pair else tracking_uid(meta.series_uid, marker.id),
                measurement=measurement,
                mask=(masks or {}).get(marker.id),
                prior=pair,
                follow_up_status=status,
            )
        )
    nodules.sort(key=lambda n: (n.result is None, -(n.result.malignancy if n.result else 0.0), n.marker.name))
    nodules = [replace(n, rank=i if n.result else 0) for i, n in enumerate(nodules, start=1)]
    worst = study_category(n.lung_rads for n in nodules)
    return StudyReport(
        patient={
            "name": meta.patient_name,
            "id": meta.patient_id,
            "birth_date": meta.patient_birth_date,
            "sex": meta.patient_sex,
        },
        study={
            "study_uid": meta.study_uid,
            "series_uid": meta.series_uid,
            "frame_of_reference_uid": meta.frame_of_reference_uid,
            "study_date": meta.study_date,
            "study_description": meta.study_description,
            "series_description": meta.series_description,
            "series_number": meta.series_number,
            "modality": meta.modality or "CT",
            "manufacturer": meta.manufacturer,
        },
        model=ModelIdentity.from_card(model_card),
        reader_name=reader_name,
        nodules=tuple(nodules),
        study_lung_rads=worst,
        created=(now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
        warnings=tuple(volume.warnings),
    )


def with_measurements(report: StudyReport, volume: CTVolume, segment: bool = True) -> StudyReport:
    """The report with every nodule measured: a nodule without a measurement is measured from its mask
    while that still fits the marker, else segmented (``core.measure.markers``); its Lung-RADS and the
    study's are then worked out again from the measured sizes. A nodule that cannot be measured keeps
    its marker-based values and says why (``measurement_error``). Without ``segment`` only the nodules
    with a fitting mask are measured; the others are left as they are."""
    from core.measure.markers import measure_markers

    def fitting(n: NoduleReport) -> bool:
        return n.mask is not None and n.mask.fits(n.marker.centre_mm, n.marker.diameter_mm)

    todo = [n for n in report.nodules if n.measurement is None and (segment or fitting(n))]
    if not todo:
        return report
    done = measure_markers(volume, [n.marker for n in todo], {n.marker.id: n.mask for n in todo if n.mask})
    nodules = []
    for nodule in report.nodules:
        key = nodule.marker.id
        if nodule.measurement is None and key in done.measurements:
            measurement = done.measurements[key]
            rads = nodule_category(
                nodule.marker.diameter_mm,
                nodule.result.attributes if nodule.result else None,
                nodule.reader.attributes if nodule.reader else None,
                measured=measurement,
            )
            if nodule.follow_up_status and nodule.lung_rads and "status" in nodule.lung_rads.inputs:
                rads = nodule.lung_rads  # Lung-RADS with priors (follow-up reading) outranks baseline
            nodule = replace(
                nodule, measurement=measurement, mask=done.masks[key], lung_rads=rads, measurement_error=""
            )
        elif key in done.errors:
            nodule = replace(nodule, measurement_error=done.errors[key])
        nodules.append(nodule)
    return replace(
        report, nodules=tuple(nodules), study_lung_rads=study_category(n.lung_rads for n in nodules)
    )
