"""A nodule's DICOM Tracking Unique Identifier: fixed by the series and the marker that first showed it.

It lives here, in the nodule vocabulary, because both the reports (``core.report``) and the follow-up
pairing (``core.followup``, below the reports) need it. The rule across time points: a nodule paired
with a prior one keeps the prior's tracking UID (the UID of the series and marker where it was first
seen; through a chain of studies, the earliest); a nodule without a prior gets its own study's.
"""

from __future__ import annotations

import hashlib


def tracking_uid(series_uid: str, marker_id: str) -> str:
    """A DICOM UID (2.25 form) fixed by the series and the marker: the same nodule keeps it across
    reports, so a PACS can follow it."""
    digest = hashlib.sha256(f"mtmr-reader/nodule\n{series_uid}\n{marker_id}".encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))
