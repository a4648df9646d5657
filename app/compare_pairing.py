"""Re-pairing by hand: the reader unpairs a current nodule from its prior, or pairs it with a prior nodule
of their choice (those left unpaired, nearest by registered distance first), from the ranked table's
context menu.

The reading is compared again in the background with the saved registration (nothing is registered
again) and the reader's pairings (``core.followup.matching.Overrides.pair`` / ``unpair``); the result
is one step on the window's undo stack, holding the reading before and after, so undo and redo swap
them at once. Each step is saved with the session; a pair carries its prior nodule's tracking UID. A
failed or cancelled comparison leaves the reading as it was.
"""

from __future__ import annotations

from functools import partial

from PySide6.QtGui import QUndoCommand
from PySide6.QtWidgets import QMenu

from app.compare_prior import guarded
from core.followup.compare import FollowUp, compare, saved_reading
from core.followup.matching import nearest

NO_PRIOR = "Show the prior first (P) to pair nodules by hand"


class Repairing:
    """A ``MainWindow`` mixin: the pairing menu of a current nodule and the undoable re-pairing."""

    def pairing_menu(self, marker_id: str) -> QMenu | None:
        """The menu of the current nodule ``marker_id``'s pairing; None without a reading."""
        marker = self.markers.get(marker_id)
        try:
            reading = FollowUp.from_dict(self.follow_up) if self.follow_up else None
        except ValueError:
            reading = None
        if reading is None or marker is None:
            return None
        menu = QMenu(self)
        prior = self.prior_view.prior
        if prior is None:  # still loading, or not found
            menu.addAction(NO_PRIOR).setEnabled(False)
            return menu
        names = {m.id: m.name for m in prior.markers}
        pair = next((p for p in reading.pairs if p.current_id == marker_id), None)
        if pair is not None:
            menu.addAction(
                f"Unpair {marker.name} from the prior's {names.get(pair.prior_id, pair.prior_id)} "
                f"({pair.distance_mm:.1f} mm)",
                partial(self.repair, "unpair", pair.prior_id, marker_id),
            )  # fmt: skip
        choices = menu.addMenu(f"Pair {marker.name} with the prior's...")
        free = {m.id: m.centre_mm for m in prior.markers if m.id in reading.resolved}
        for prior_id, distance in nearest(free, marker.centre_mm, reading.registration.to_current):
            choices.addAction(
                f"{names[prior_id]} ({distance:.1f} mm away after registration)",
                partial(self.repair, "pair", prior_id, marker_id),
            )
        if not free:
            choices.addAction("(no prior nodule is left unpaired)").setEnabled(False)
        self.add_carry_actions(menu, reading, prior)  # app.compare_carry
        self.add_lookback_actions(menu, reading, marker)  # app.compare_lookback
        return menu

    def _table_menu(self, position) -> None:
        table = self.review.table
        item = table.itemAt(position)
        menu = self.pairing_menu(table.marker_at(item.row())) if item is not None else None
        if menu is not None:
            menu.exec(table.viewport().mapToGlobal(position))

    def repair(self, how: str, prior_id: str, current_id: str) -> None:
        """``how``: "pair" or "unpair" the prior nodule ``prior_id`` and the current ``current_id``;
        compared again in the background, then one undoable step."""

        def finish(prior, prior_markers, before, result) -> None:
            after = {**before, **result.to_dict()}  # what the app keeps beside it (prior_source) stays
            names = {m.id: m.name for m in prior.markers}
            marker = self.markers.get(current_id)
            link = "with" if how == "pair" else "from"
            text = f"{how} {marker.name if marker else current_id} {link} {names.get(prior_id, prior_id)}"
            self.markers.undo.push(_Repairing(self, before, after, text))  # "Undo pair N2 with n6"
            self._idle(f"{how.capitalize()}ed: {text[len(how) + 1 :]} (the prior's); compared again")

        self.compare_again(
            lambda overrides: getattr(overrides, how)(prior_id, current_id),
            finish,
            failed="Pairing not changed",
            busy="Pairing again (with the saved registration)...",
        )

    def compare_again(
        self, change, finish, failed: str, busy: str, added_prior=None, added_current=None
    ) -> None:
        """The shown prior and this study compared again in the background with the saved registration
        and the reader's pairings as ``change(overrides)`` makes them, ``added_prior`` / ``added_current``
        (a marker or None) joining the markers compared; ``finish(prior, prior_markers, before, result)``
        then makes the undoable step. Without the prior shown, with a prior that is not the reading's, a
        reading changed meanwhile or a failed comparison, nothing changes and the status line says why
        after ``failed``."""
        prior, volume, before = self.prior_view.prior, self.volume, dict(self.follow_up)
        if prior is None or volume is None or not before:
            self.statusBar().showMessage(NO_PRIOR, 8000)
            return
        prior_markers = [*prior.markers, *([added_prior] if added_prior else [])]
        markers = [*self.markers.markers, *([added_current] if added_current else [])]
        masks = self.review.segmentation.current()
        saved = saved_reading(before, prior.volume, prior_markers, markers)
        if saved is None:
            self.statusBar().showMessage("The prior shown is not the reading's: press P again", 8000)
            return
        registration, overrides = saved
        changed = change(overrides)

        def job(progress, cancelled):
            return compare(
                prior.volume, volume, prior_markers, markers, prior_masks=prior.masks, current_masks=masks,
                registration=registration, overrides=changed, progress=progress, cancelled=cancelled,
            )  # fmt: skip

        def done(result) -> None:
            if self.volume is not volume or self.follow_up != before or self.prior_view.prior is not prior:
                self._idle(f"{failed}: the reading changed meanwhile")
            elif isinstance(result, str):
                self._idle(f"{failed}: {result}")
            else:
                finish(prior, prior_markers, before, result)

        self.statusBar().showMessage(busy)
        self._run(guarded(job), done, alongside=True)

    def set_reading(self, record: dict) -> None:
        """Show ``record`` (a reading's ``FollowUp.to_dict()``) as the study's reading, and save it."""
        self.follow_up = dict(record)
        reading = FollowUp.from_dict(record)
        self.review.table.set_follow_up(reading)
        self.prior_view.set_reading(reading)
        self.save_session()


class _Repairing(QUndoCommand):
    def __init__(self, window, before: dict, after: dict, text: str) -> None:
        super().__init__(text)
        self.window, self.before, self.after = window, before, after

    def redo(self) -> None:
        self.window.set_reading(self.after)

    def undo(self) -> None:
        self.window.set_reading(self.before)
