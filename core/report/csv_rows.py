"""The columns and cells the two nodule tables share: the report's ``ranking.csv`` (``core.report.tables``)
and the batch ranking of many studies (``core.report.batch_ranking``).

A nodule's cells are worked out here once, so both tables round, name and leave empty the same way:
``nodule_cells`` gives the marker, the model's scores, the Lung-RADS estimate and the reader's label;
``model_cells`` the model's identity. Each table puts these columns in its own order, with its own
extra columns (the report's slice, follow-up and ``prior_cells``: the change since the prior study, the
batch's study number and ranks), and writes
them with ``csv_text``: a header row, then one row per nodule, an empty cell for ``None``.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence

from core.nodule.ratings import ATTRIBUTES

MARKER_COLUMNS = ("marker_id", "marker_name", "location")
POSITION_COLUMNS = ("center_x_mm", "center_y_mm", "center_z_mm", "diameter_mm")
SCORE_COLUMNS = (
    "malignancy_probability",
    "malignancy_low",
    "malignancy_high",
    "indeterminate",
    "ood_warnings",
    "uncertainty",
    *ATTRIBUTES,
)
LUNG_RADS_COLUMNS = ("lung_rads", "lung_rads_rule")
READER_COLUMNS = ("reader_malignancy", "reader_label")
LABEL_SOURCE_COLUMN = "label_source"
MEASURE_COLUMNS = (
    "volume_mm3",
    "long_axis_mm",
    "short_axis_mm",
    "mean_diameter_mm",
    "solid_diameter_mm",
    "measured_texture",
    "touches_pleura",
    "mask_method",
    "mask_edited",
    "lung_rads_basis",
    "measurement_error",
)
STUDY_COLUMNS = ("study_uid", "series_uid")
MODEL_COLUMNS = ("model_name", "model_version", "weights_sha256")
PRIOR_COLUMNS = (
    "follow_up_status", "prior_marker_id", "interval_days", "prior_volume_mm3", "prior_mean_diameter_mm",
    "volume_change_percent", "diameter_change_mm", "vdt_days", "vdt", "lungrads_growth", "volume_growth",
    "volume_method",
)  # fmt: skip
NODULE_COLUMNS = (
    *MARKER_COLUMNS,
    *POSITION_COLUMNS,
    *SCORE_COLUMNS,
    *LUNG_RADS_COLUMNS,
    *READER_COLUMNS,
    LABEL_SOURCE_COLUMN,
)


def rounded(value: float | None, digits: int) -> float | None:
    """``value`` rounded to ``digits``; ``None`` when there is none or it is not finite."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def nodule_cells(marker, location: str, result=None, lung_rads=None, label=None) -> dict:
    """The cells of ``NODULE_COLUMNS`` for one nodule: its marker (``NoduleMarker``) and lung
    ``location``, the model's ``result`` (``NoduleResult``, or ``None`` when not analysed), its
    Lung-RADS estimate (anything with ``category`` and ``rule``) and the reader's ``label``
    (``NoduleLabel``). Probabilities have 4 decimals, attribute scores 3, millimetres 2; the
    malignancy's TTA interval is ``malignancy_low``/``_high``, ``indeterminate`` says it crosses the
    decision band, ``ood_warnings`` the out-of-distribution reasons (``core.nodule.prediction``)."""
    x, y, z = marker.centre_mm
    return {
        "marker_id": marker.id,
        "marker_name": marker.name,
        "location": location,
        "center_x_mm": round(x, 2),
        "center_y_mm": round(y, 2),
        "center_z_mm": round(z, 2),
        "diameter_mm": round(marker.diameter_mm, 2),
        "malignancy_probability": rounded(result.malignancy, 4) if result else None,
        "malignancy_low": rounded(result.interval[0], 4) if result and result.interval else None,
        "malignancy_high": rounded(result.interval[1], 4) if result and result.interval else None,
        "indeterminate": result.indeterminate if result else None,
        "ood_warnings": "; ".join(result.warnings) or None if result else None,
        "uncertainty": rounded(result.uncertainty, 4) if result else None,
        **{name: rounded(result.attributes.get(name), 3) if result else None for name in ATTRIBUTES},
        "lung_rads": lung_rads.category if lung_rads else None,
        "lung_rads_rule": lung_rads.rule if lung_rads else None,
        "reader_malignancy": label.malignancy if label else None,
        "reader_label": label.classification if label else None,
        "label_source": label.source if label else None,
    }


def prior_cells(status: str, pair=None) -> dict:
    """The cells of ``PRIOR_COLUMNS``: the nodule's ``status`` at a follow-up reading ("new", its
    trend, "" without a reading) and, for a nodule paired with a prior one (``core.followup.compare``
    ``PairedNodule``), the prior's marker and size, the change and the volume doubling time (``vdt``:
    its text, "stable" or "shrinking" where there is no doubling time)."""
    g = pair.growth if pair is not None else None
    return {
        "follow_up_status": status or None,
        "prior_marker_id": pair.prior_id if pair is not None else None,
        "interval_days": g.interval_days if g else None,
        "prior_volume_mm3": rounded(g.prior_volume_mm3, 1) if g else None,
        "prior_mean_diameter_mm": rounded(g.prior_mean_diameter_mm, 1) if g else None,
        "volume_change_percent": rounded(g.volume_change_percent, 1) if g else None,
        "diameter_change_mm": rounded(g.diameter_change_mm, 1) if g else None,
        "vdt_days": rounded(g.vdt_days, 0) if g else None,
        "vdt": g.vdt_text if g else None,
        "lungrads_growth": g.lungrads_growth if g else None,
        "volume_growth": g.volume_growth if g else None,
        "volume_method": g.volume_method if g else None,
    }


def measure_cells(measurement=None, lung_rads=None, error: str = "") -> dict:
    """The cells of ``MEASURE_COLUMNS``: the nodule's measurement (``core.measure``'s
    ``NoduleMeasurement``, ``None`` when not measured), whether its Lung-RADS size was "measured" or
    "estimated" (from the marker), and why it was not measured. Volumes to the whole mm^3 and
    diameters to 0.1 mm, as Lung-RADS reports them."""
    m = measurement
    basis = None
    if lung_rads is not None:
        basis = "measured" if lung_rads.inputs.get("size_basis") == "measured" else "estimated"
    return {
        "volume_mm3": round(m.volume_mm3) if m else None,
        "long_axis_mm": rounded(m.long_axis_mm, 1) if m else None,
        "short_axis_mm": rounded(m.short_axis_mm, 1) if m else None,
        "mean_diameter_mm": rounded(m.mean_diameter_mm, 1) if m else None,
        "solid_diameter_mm": rounded(m.solid_diameter_mm, 1) if m else None,
        "measured_texture": m.texture if m else None,
        "touches_pleura": m.touches_pleura if m else None,
        "mask_method": m.method if m else None,
        "mask_edited": m.edited if m else None,
        "lung_rads_basis": basis,
        "measurement_error": error or None,
    }


def model_cells(name: str, version: str, weights_sha256: str) -> dict:
    """The cells of ``MODEL_COLUMNS``: the model's name, version and the first 12 hex digits of its
    weights' hash."""
    return {"model_name": name, "model_version": version, "weights_sha256": str(weights_sha256)[:12]}


def csv_text(columns: Sequence[str], rows: Sequence[Mapping]) -> str:
    """A CSV file's text: the header ``columns``, then the rows' cells in that order (``None`` empty),
    ``\\n`` line ends."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None else row[key] for key in columns})
    return buffer.getvalue()
