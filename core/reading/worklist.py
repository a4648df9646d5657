"""What the worklist shows of one saved session: its study, nodules, top malignancy, worst Lung-RADS
category (the reader's overrides included; from the measured sizes where a nodule's mask was measured, as
the table shows it), how many nodules a reader confirmed, and when it was saved."""

from __future__ import annotations

from pathlib import Path

from core.nodule.lungrads import nodule_category, study_category
from core.reading.session import Session


def summarise(session: Session) -> dict:
    """What the worklist shows of one session (from its saved markers, results and labels)."""
    markers = {m.id: m for m in session.markers}
    results = {k: r for k, r in session.results.items() if k in markers}
    top = max(results.values(), key=lambda r: r.get("malignancy_probability", 0.0), default=None)
    worst = study_category(
        nodule_category(
            markers[marker_id].diameter_mm,
            result.get("attributes") if isinstance(result, dict) else None,
            label.attributes if (label := session.labels.get(marker_id)) else None,
            measured=_measured(session, markers[marker_id]),
        )
        for marker_id, result in results.items()
    )
    top_id = None
    if top is not None:
        top_id = next(k for k, r in results.items() if r is top)
    return {
        "study": Path(session.source).name if session.source else session.study_uid[-12:],
        "source": session.source,
        "nodules": len(markers),
        "top": top.get("malignancy_probability") if top else None,
        "top_marker": top_id,
        "lung_rads": worst.category if worst else "",
        "lung_rads_rule": worst.rule if worst else "",
        "confirmed": session.labelled_count,
        "saved": session.saved_at,
    }


def _measured(session: Session, marker):
    """The measurement of the marker's saved mask while that mask still belongs to the marker as it is
    (the session keeps a measurement only with the mask it was measured on)."""
    mask = session.masks.get(marker.id)
    if mask is None or not mask.fits(marker.centre_mm, marker.diameter_mm):
        return None
    return session.measurements.get(marker.id)
