"""Looking for a new nodule in the prior: for a current nodule without a prior one ("new"), the pairing
menu offers "Look for N in the prior". Its centre is carried back through the saved registration
(``Registration.to_prior``); both studies centre on it and a proposed outline (the current nodule's
diameter, named "N? (proposed)") is drawn in the prior view, with Confirm / Discard beside the status
line (``app.compare_carry``). Confirm adds a marker to the prior's markers held in the follow-up reading
(``PRIOR_ADDED`` of its record: the prior study's own files and session are never written) paired with
the current nodule, compared again with the saved registration: one undoable step saved with the
session. Discard changes nothing; a failed comparison leaves the reading as it was.
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
from PySide6.QtGui import QUndoCommand

from app.compare_pairing import NO_PRIOR
from app.compare_prior import PRIOR_ADDED
from core.followup.compare import FollowUp
from core.nodule.markers import MarkerSet


class LookingBack:
    """A ``MainWindow`` mixin: propose a new current nodule in the prior, confirmed or discarded."""

    def add_lookback_actions(self, menu, reading: FollowUp, marker) -> None:
        """The action "Look for N in the prior" when the current nodule ``marker`` is new."""
        if any(n.current_id == marker.id for n in reading.new):
            menu.addAction(f"Look for {marker.name} in the prior", partial(self.look_back, marker.id))

    def look_back(self, current_id: str) -> None:
        """Propose the current nodule ``current_id`` in the prior, where the registration puts it back."""
        prior, marker = self.prior_view.prior, self.markers.get(current_id)
        if prior is None or marker is None or not self.follow_up:
            self.statusBar().showMessage(NO_PRIOR, 8000)
            return
        try:
            registration = FollowUp.from_dict(self.follow_up).registration
        except ValueError as exc:
            self.statusBar().showMessage(f"Not looked for: {exc}", 8000)
            return
        point = tuple(float(v) for v in registration.to_prior(np.asarray(marker.centre_mm, float)))
        if not prior.volume.contains_mm(np.asarray(point)):
            self.statusBar().showMessage(f"{marker.name} falls outside the prior study: not proposed", 8000)
            return
        found = MarkerSet(prior.markers).new_marker(point, marker.diameter_mm)
        self.discard_carry()  # one proposal at a time
        self.prior_view.proposed = replace(found, name=f"{marker.name}? (proposed)")
        self.proposal = partial(self._confirm_found, current_id, found)
        self.markers.select(current_id)
        self.workspace.centre_on_mm(marker.centre_mm)  # the prior view follows through the registration
        self.prior_view.draw_markers()
        self._carry_bar(f"{marker.name} looked for in the prior: confirm it there as {found.name}?").show()
        self.statusBar().showMessage(f"{marker.name} proposed in the prior at its registered place")

    def _confirm_found(self, current_id: str, found) -> None:
        def finish(prior, prior_markers, before, result) -> None:
            added = [*before.get(PRIOR_ADDED, []), found.to_dict()]
            after = {**before, **result.to_dict(), PRIOR_ADDED: added}
            grown = replace(prior, markers=prior_markers)
            self.markers.undo.push(_FoundInPrior(self, (prior, grown), (before, after), found.name))
            self._idle(f"Added {found.name} to the prior's markers of this reading, paired; compared again")

        self.compare_again(
            lambda overrides: overrides.pair(found.id, current_id),
            finish,
            failed="Not added to the prior",
            busy="Adding the nodule to the prior's markers and comparing again...",
            added_prior=found,
        )


class _FoundInPrior(QUndoCommand):
    """The prior's markers with the one found and the reading pairing it, or both as before."""

    def __init__(self, window, priors: tuple, readings: tuple[dict, dict], name: str) -> None:
        super().__init__(f"add {name} to the prior")
        self.window, self.priors, self.readings = window, priors, readings

    def _show(self, k: int) -> None:
        self.window.prior_view.prior = self.priors[k]
        self.window.set_reading(self.readings[k])

    def redo(self) -> None:
        self._show(1)

    def undo(self) -> None:
        self._show(0)
