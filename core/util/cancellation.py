"""What long jobs (loading, training, analysis, export) share, whoever drives them (CLI or app)."""

from __future__ import annotations

from collections.abc import Callable


class Cancelled(Exception):
    """The caller asked the job to stop; a cancelled job leaves the previous state intact."""


def check(cancelled: Callable[[], bool] | None) -> None:
    """Raise ``Cancelled`` when the caller has asked to stop (``cancelled`` may be None)."""
    if cancelled is not None and cancelled():
        raise Cancelled()
