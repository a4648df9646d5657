"""The model's notes beside a nodule's probability of cancer in the SR (``core.report.sr``): its TTA
interval, whether that crosses the decision band, and the out-of-distribution reasons, as TEXT items
the nodule's measurement group CONTAINS."""

from __future__ import annotations

import highdicom as hd

from core.report.sr_codes import INTERVAL_NOTE, MALIGNANCY_INTERVAL, OOD_WARNING


def model_notes(result) -> list[hd.sr.TextContentItem]:
    """TEXT items beside the probability: its TTA interval (and whether it crosses the decision band),
    and each out-of-distribution reason."""
    if result is None:
        return []
    notes = []
    if result.interval is not None:
        band = "; indeterminate: crosses the decision band (10 % / 70 %)" if result.indeterminate else ""
        value = f"{result.score_text} - {INTERVAL_NOTE}{band}"
        notes.append(_text(MALIGNANCY_INTERVAL, value))
    notes += [_text(OOD_WARNING, f"score not reliable: {reason}") for reason in result.warnings]
    return notes


def _text(concept, value: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(name=concept, value=value, relationship_type="CONTAINS")
